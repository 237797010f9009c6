"""The scan job: from a queued (repository, digest) to stored findings and an SBOM referrer.

An image index is scanned per platform manifest and the findings merged (a finding is one
vulnerability × package × path, kept once). Blobs are hard-linked out of Berth's store into a
throw-away OCI layout, so a scan never copies layers and never goes over the network
(justification: no scanner credential to mint, nothing to pull twice, and Trivy reads a
layout directory at disk speed).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from registry.blobcache import BlobCache
from registry.images import put_image
from registry.events import IMAGE_SCANNED
from registry.metadata.models import Event, ManifestRecord, Repository
from registry.metadata.scans import IN_PROGRESS
from registry.oci.digests import digest_bytes, parse_digest
from registry.oci.manifests import IMAGE_TYPES, OCI_MANIFEST
from registry.publishing import store_blob
from registry.storage.base import BlobStore
from scanner.base import Scanner, ScanError, ScanReport, ScanStatus, ScanTarget
from scanner.findings import Finding, severity_counts
from scanner.layout import LayoutError, NotAnImage, materialize_layout

log = logging.getLogger(__name__)

SBOM_TYPE = "application/vnd.cyclonedx+json"
EMPTY_CONFIG = b"{}"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
GENERATOR = "dev.berth.sbom.generator"  # marks the SBOM referrers Berth itself publishes


class RetryScan(Exception):
    """The scan may succeed later (timeout, killed scanner): retry with backoff."""


@dataclass
class ScanService:
    metadata: Any
    blobs: BlobStore
    cache: BlobCache
    scanner: Scanner
    work_dir: Path
    region: str

    async def run(self, payload: dict[str, Any]) -> None:
        """Scan the image a job names and store the outcome.

        Raises:
            RetryScan: a transient scanner failure; the job is retried.
        """
        account, name, digest = payload["account"], payload["repository"], payload["digest"]
        repo = await self.metadata.get_repository(account, name)
        record = await self.metadata.get_manifest(repo.id, digest) if repo else None
        if repo is None or record is None:
            log.info("scan target gone", extra={"repository": name, "digest": digest})
            return
        scan = await self.metadata.get_scan(repo.id, digest)
        if scan is None or scan.status != IN_PROGRESS:
            # Not requested (or the repository was recreated), or already recorded by
            # another run of this job (a lost lease): nothing to scan.
            return
        reports = [await self._scan_one(repo, child) for child in await self._targets(repo, record)]
        await self._store(repo, record, reports)

    async def _targets(self, repo: Repository, record: ManifestRecord) -> list[ManifestRecord]:
        if record.media_type in IMAGE_TYPES:
            return [record]
        children = []
        body = json.loads(await self._bytes(record.digest))
        for child in body.get("manifests", []):
            found = await self.metadata.get_manifest(repo.id, child["digest"])
            if found is not None and found.media_type in IMAGE_TYPES:
                children.append(found)
        return children

    async def _bytes(self, digest: str) -> bytes:
        """A manifest's bytes, verified when read from disk.

        Raises: FileNotFoundError (CorruptBlobError when damaged)."""
        return await self.cache.read(digest, lambda: self.blobs.read_bytes(parse_digest(digest)))

    async def _scan_one(self, repo: Repository, record: ManifestRecord) -> tuple[ManifestRecord,
                                                                                ScanReport]:
        layout = self.work_dir / uuid.uuid4().hex
        try:
            body = await self._bytes(record.digest)
            await asyncio.to_thread(
                materialize_layout, lambda d, dest: self.blobs.materialize(parse_digest(d), dest),
                record.digest, body, layout)
            report = await self.scanner.scan(ScanTarget(layout, record.digest))
        except ScanError as exc:
            if exc.retryable:
                raise RetryScan(str(exc)) from exc
            report = self._outcome(ScanStatus.FAILED, str(exc))
        except NotAnImage as exc:
            report = self._outcome(ScanStatus.UNSUPPORTED_IMAGE, f"UnsupportedImageError: {exc}")
        except LayoutError as exc:
            report = self._outcome(ScanStatus.FAILED, f"the image cannot be read: {exc}")
        except FileNotFoundError:  # the manifest is gone or damaged (CorruptBlobError)
            report = self._outcome(ScanStatus.FAILED, "the image cannot be read: its manifest "
                                   "is missing or damaged in storage; push the image again")
        finally:
            shutil.rmtree(layout, ignore_errors=True)
        return record, report

    def _outcome(self, status: ScanStatus, description: str) -> ScanReport:
        return ScanReport(status, description, (), None, None, None, self.scanner.name, "")

    async def _store(self, repo: Repository, record: ManifestRecord,
                     reports: list[tuple[ManifestRecord, ScanReport]]) -> None:
        findings: dict[tuple[str, str, str], Finding] = {}
        for _, report in reports:
            for finding in report.findings:
                findings.setdefault((finding.vulnerability_id, finding.package_name,
                                     finding.package_path or ""), finding)
        statuses = [r.status for _, r in reports]
        if not reports:
            status, description = ScanStatus.UNSUPPORTED_IMAGE, "The image has no scannable " \
                                                                 "platform manifest."
        elif ScanStatus.COMPLETE in statuses:
            status, description = ScanStatus.COMPLETE, "The scan was completed successfully."
        else:
            status, description = statuses[0], reports[0][1].description
        first = reports[0][1] if reports else None
        counts = {}
        if status == ScanStatus.COMPLETE:
            # ECR's severity names: Trivy's UNKNOWN is ECR's UNDEFINED; zero counts omitted.
            counts = {("UNDEFINED" if level == "UNKNOWN" else level): count for level, count
                      in severity_counts(list(findings.values())).items() if count}
        db_time = first.db_updated_at.timestamp() if first and first.db_updated_at else None
        tags = await self.metadata.tags_for(repo.id, record.digest)
        event = Event(IMAGE_SCANNED, {
            "account": repo.account, "repository": repo.name, "digest": record.digest,
            "tags": tags, "status": status.value, "severityCounts": counts})
        recorded = await self.metadata.finish_scan(
            repo.id, record.digest, status=status.value, description=description,
            scanner=first.scanner_name if first else self.scanner.name,
            scanner_version=first.scanner_version if first else None, db_updated_at=db_time,
            severity_counts=counts, findings=[f.to_json() for f in findings.values()],
            os_family=first.os_family if first else None, os_name=first.os_name if first else None,
            events=[event])
        if not recorded:
            return  # another run of this job recorded the scan (and publishes the SBOM)
        for child, report in reports:
            if report.status == ScanStatus.COMPLETE and report.sbom:
                await self._publish_sbom(repo, child, report)

    async def _publish_sbom(self, repo: Repository, subject: ManifestRecord,
                            report: ScanReport) -> None:
        """Store the CycloneDX SBOM as an OCI artifact whose subject is the scanned image."""
        sbom = report.sbom or b""
        for data in (EMPTY_CONFIG, sbom):
            digest = digest_bytes(data)
            if await self.metadata.linked_blob_size(repo.id, str(digest)) is None:
                staged = await self.blobs.stage_bytes(data, digest)
                await store_blob(self.metadata, self.blobs, repo.id, staged)
        created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        manifest = {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SBOM_TYPE,
            "config": {"mediaType": EMPTY_TYPE, "digest": str(digest_bytes(EMPTY_CONFIG)),
                       "size": 2, "data": base64.b64encode(EMPTY_CONFIG).decode()},
            "layers": [{"mediaType": SBOM_TYPE, "digest": str(digest_bytes(sbom)),
                        "size": len(sbom)}],
            "subject": {"mediaType": subject.media_type, "digest": subject.digest,
                        "size": subject.size},
            "annotations": {"org.opencontainers.image.created": created,
                            GENERATOR:
                                f"{report.scanner_name} {report.scanner_version}".strip()}}
        body = json.dumps(manifest, separators=(",", ":")).encode()
        # Each scan's SBOM differs (serial number, timestamp): replace Berth's previous one
        # instead of piling up a referrer per rescan.
        for old in await self.metadata.list_referrers(repo.id, subject.digest, SBOM_TYPE):
            if GENERATOR in (old.annotations or {}):
                await self.metadata.delete_manifest(repo.id, old.digest, [])
        await put_image(metadata=self.metadata, blobs=self.blobs, cache=self.cache,
                        repository=repo, body=body, content_type=OCI_MANIFEST, tags=(),
                        announce=False)
