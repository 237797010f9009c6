"""Harbor-style pull protection: refuse pulls of images whose last completed scan has
findings at or above a repository's threshold (repository tag
``berth:block-pulls-at-severity`` = CRITICAL | HIGH | MEDIUM | LOW).

The threshold lookup is memoised per process for a second so the pull path costs one
dictionary lookup when protection is off.
"""

from __future__ import annotations

import time

from registry.metadata.models import ManifestRecord, Repository
from registry.oci.errors import Denied
from registry.scanning import blocking_severity, blocks

_TTL = 1.0


class PullProtection:
    def __init__(self, metadata) -> None:
        self.metadata = metadata
        self._thresholds: dict[int, tuple[float, str | None]] = {}

    def invalidate(self) -> None:
        self._thresholds.clear()

    async def threshold(self, repo: Repository) -> str | None:
        entry = self._thresholds.get(repo.id)
        now = time.monotonic()
        if entry is not None and entry[0] > now:
            return entry[1]
        if len(self._thresholds) > 10_000:
            self._thresholds.clear()
        value = blocking_severity(dict(await self.metadata.repository_tags(repo.id)))
        self._thresholds[repo.id] = (now + _TTL, value)
        return value

    async def check(self, repo: Repository, record: ManifestRecord) -> None:
        """Raises: Denied naming the severity found and the repository's threshold."""
        threshold = await self.threshold(repo)
        if threshold is None:
            return
        scan = await self.metadata.get_scan(repo.id, record.digest)
        if scan is None or scan.status != "COMPLETE":
            return
        level = blocks(threshold, scan.severity_counts)
        if level is not None:
            raise Denied(f"pull refused: image {record.digest} has {level} vulnerabilities and "
                         f"repository '{repo.name}' blocks pulls of images with {threshold} "
                         "or higher findings", detail={"severity": level})
