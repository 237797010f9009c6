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
from datetime import datetime
from pathlib import Path
from typing import Any

from registry import scanning
from registry.blobcache import BlobCache
from registry.config import Config
from registry.images import put_image
from registry.oci.digests import digest_bytes, parse_digest
from registry.metadata.models import Repository
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

    async def current_layer(self) -> str | None:
        """The layer digest of the DB artifact the registry holds now."""
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
                return layer["digest"]
        return None

    def _install(self, digest: str) -> datetime:
        # The store places the layer as a file next to the cache (a hard link from the
        # filesystem store, a download from a remote one), removed once installed.
        self.shared_dir.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="berth-dbsync-",
                                         dir=self.shared_dir.parent) as scratch:
            layer = Path(scratch) / "db.tar.gz"
            self.blobs.materialize(parse_digest(digest), layer)
            return install_db(layer, self.shared_dir)

    async def sync(self) -> bool:
        """Install the registry's DB if it changed; return whether a DB is installed."""
        digest = await self.current_layer()
        if digest is None:
            return False
        if digest == self._installed:
            return True
        try:
            updated_at = await asyncio.to_thread(self._install, digest)
        except InvalidDatabase as exc:
            log.error("vulnerability database artifact rejected", extra={"error": str(exc)})
            return self._installed is not None
        self._installed = digest
        await self._announce(digest, updated_at.timestamp())
        return True

    async def _announce(self, digest: str, updated_at: float) -> None:
        """Queue rescans of CONTINUOUS_SCAN images for a DB seen for the first time: the
        store records the DB and queues them in one transaction, for one node only; the
        jobs' idempotency keys name the DB, so even a repeated announcement queues each
        rescan once."""
        configs: dict[str, scanning.ScanningConfiguration] = {}
        repos: dict[int, Repository | None] = {}
        rescans = []
        for repository_id, manifest_digest in await self.metadata.scans_older_than_db(
                updated_at):
            if repository_id not in repos:
                repos[repository_id] = await self.metadata.get_repository_by_id(repository_id)
            repo = repos[repository_id]
            if repo is None:
                continue
            if repo.account not in configs:
                configs[repo.account] = await scanning.load_configuration(self.metadata,
                                                                          repo.account)
            config = configs[repo.account]
            if scanning.repository_frequency(config, repo)[0] == "CONTINUOUS_SCAN":
                rescans.append(scanning.scan_request(
                    repo, manifest_digest, scan_type=config.scan_type, reason="database-update",
                    priority=scanning.RESCAN_PRIORITY,
                    idempotency_key=f"rescan:{digest}:{repo.id}:{manifest_digest}"))
        announced = await self.metadata.announce_scanner_db(
            account=self.config.default_account, setting=DB_SETTING, digest=digest,
            updated_at=updated_at, rescans=rescans)
        if announced and rescans:
            log.info("rescans queued for a new vulnerability database",
                     extra={"count": len(rescans), "layer": digest})
