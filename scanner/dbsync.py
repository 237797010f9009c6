"""The vulnerability DB lives in Berth itself, as an OCI artifact (scanning.md §2.7).

``publish_db`` stores a DB artifact under ``<db_repository>:<db_tag>`` of the default
account (what ``berth scanner update-db`` does); ``DatabaseSync`` installs the artifact a
worker finds there into the shared Trivy DB directory whenever its digest changes, and the
one process that records the change queues rescans of CONTINUOUS_SCAN images in the same
transaction (so a new DB is announced exactly once, and its rescans survive restarts).
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry import scanning
from registry.blobcache import BlobCache
from registry.config import Config
from registry.events import enqueue_in
from registry.images import put_image
from registry.metadata.scan_queries import mark_scan_requested
from registry.oci.digests import digest_bytes, parse_digest
from registry.oci.manifests import OCI_MANIFEST
from registry.publishing import store_blob
from scanner.trivydb import (
    CONFIG_MEDIA_TYPE, LAYER_MEDIA_TYPE, InvalidDatabase, db_artifact_manifest, install_db,
)

log = logging.getLogger(__name__)

DB_SETTING = "SCANNER_DB_DIGEST"  # the artifact layer digest the registry last announced


def validate_layer(layer: bytes) -> None:
    """Raises: InvalidDatabase (nothing is installed anywhere)."""
    with tempfile.TemporaryDirectory(prefix="berth-dbcheck-") as scratch:
        install_db(layer, Path(scratch))


async def publish_db(*, metadata, blobs, cache: BlobCache, config: Config, layer: bytes,
                     db_config: bytes = b"{}") -> str:
    """Validate a DB layer and store it as the registry's DB artifact; return its digest.

    Raises:
        InvalidDatabase: the layer is not a usable Trivy DB (nothing changes).
    """
    await asyncio.to_thread(validate_layer, layer)
    repo = await metadata.ensure_repository(config.default_account,
                                            config.scanner.db_repository)
    for data in (db_config, layer):
        digest = digest_bytes(data)
        staged = await blobs.stage_bytes(data, digest)
        await store_blob(metadata, blobs, repo.id, staged)
    manifest = db_artifact_manifest(db_config, layer)
    pushed = await put_image(metadata=metadata, blobs=blobs, cache=cache, repository=repo,
                             body=manifest, content_type=OCI_MANIFEST,
                             tags=(config.scanner.db_tag,), announce=False)
    return str(pushed.digest)


@dataclass
class DatabaseSync:
    metadata: Any
    blobs: Any
    config: Config
    shared_dir: Path
    _installed: str | None = None

    async def current_layer(self) -> tuple[str, Path] | None:
        """The layer digest and blob path of the DB artifact the registry holds now."""
        repo = await self.metadata.get_repository(self.config.default_account,
                                                  self.config.scanner.db_repository)
        record = await self.metadata.resolve_tag(repo.id, self.config.scanner.db_tag) \
            if repo else None
        if record is None:
            return None
        body = json.loads(await self.blobs.read_bytes(parse_digest(record.digest)))
        if body.get("config", {}).get("mediaType") != CONFIG_MEDIA_TYPE:
            return None
        for layer in body.get("layers", []):
            if layer.get("mediaType") == LAYER_MEDIA_TYPE:
                path = self.blobs.local_path(parse_digest(layer["digest"]))
                return layer["digest"], path
        return None

    async def sync(self) -> bool:
        """Install the registry's DB if it changed; return whether a DB is installed."""
        current = await self.current_layer()
        if current is None:
            return False
        digest, path = current
        if digest == self._installed:
            return True
        try:
            updated_at = await asyncio.to_thread(install_db, path, self.shared_dir)
        except InvalidDatabase as exc:
            log.error("vulnerability database artifact rejected", extra={"error": str(exc)})
            return self._installed is not None
        self._installed = digest
        await self._announce(digest, updated_at.timestamp())
        return True

    async def _announce(self, digest: str, updated_at: float) -> None:
        """Queue rescans for a DB seen for the first time (one process wins)."""
        account = self.config.default_account
        configs: dict[str, scanning.ScanningConfiguration] = {}
        stale = await self.metadata.scans_older_than_db(updated_at)
        targets = []
        for repository_id, manifest_digest in stale:
            repo = await self.metadata.get_repository_by_id(repository_id)
            if repo is None:
                continue
            if repo.account not in configs:
                configs[repo.account] = await scanning.load_configuration(self.metadata,
                                                                          repo.account)
            config = configs[repo.account]
            if scanning.repository_frequency(config, repo)[0] == "CONTINUOUS_SCAN":
                targets.append((repo, manifest_digest, config.scan_type))

        def announce(conn) -> int:
            row = conn.execute("SELECT value FROM registry_settings WHERE account = ? AND "
                               "name = ?", (account, DB_SETTING)).fetchone()
            if row is not None and row[0] == digest:
                return 0
            conn.execute("INSERT INTO registry_settings (account, name, value, updated_at) "
                         "VALUES (?, ?, ?, ?) ON CONFLICT (account, name) DO UPDATE SET "
                         "value = excluded.value, updated_at = excluded.updated_at",
                         (account, DB_SETTING, digest, updated_at))
            for repo, manifest_digest, scan_type in targets:
                mark_scan_requested(conn, repo.id, manifest_digest, scan_type)
                enqueue_in(conn, scanning.SCAN_JOB, {
                    "account": repo.account, "repository": repo.name, "digest": manifest_digest,
                    "scanType": scan_type, "reason": "database-update"},
                    priority=scanning.RESCAN_PRIORITY)
            return len(targets)

        queued = await self.metadata.transaction(announce)
        if queued:
            log.info("rescans queued for a new vulnerability database",
                     extra={"count": queued, "layer": digest})
