"""Harbor-style pull protection: refuse to hand out images whose last completed scan has
findings at or above a repository's threshold (repository tag
``berth:block-pulls-at-severity`` = CRITICAL | HIGH | MEDIUM | LOW).

Every path that hands out an image asks here: the manifest GET/HEAD and BatchGetImage
(``blocked_image``), and the layer paths — GetDownloadUrlForLayer, /v2/ blob GET and a
cross-repository mount (``blocked_layer``). A layer is blocked only when every image of the
repository that uses it is blocked: a base layer shared with a clean image stays
downloadable, while a pull that skips the manifest cannot fetch what only blocked images
hold. The platform manifests of a blocked index (scanned as a whole) are blocked with it.

The threshold lookup is memoised per process for a second, so the request path costs one
map lookup when protection is off.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from registry.auth.credential_cache import TTLMap
from registry.metadata.models import ManifestRecord, Repository
from registry.oci.errors import Denied
from registry.scanning import blocking_severity, blocks

_TTL = 1.0
_MAX_REPOSITORIES = 10_000


@dataclass(frozen=True, slots=True)
class Blocked:
    """Why an image (or a layer only blocked images use) must not be handed out."""

    image: str  # the blocked image's manifest digest
    level: str  # the most severe level found at or above the threshold
    threshold: str
    repository: str

    def reason(self) -> str:
        return (f"image {self.image} has {self.level} vulnerabilities and repository "
                f"'{self.repository}' blocks pulls of images with {self.threshold} or higher "
                "findings")


class PullProtection:
    def __init__(self, metadata, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.metadata = metadata
        self._thresholds = TTLMap(_TTL, _MAX_REPOSITORIES, clock)

    def invalidate(self) -> None:
        self._thresholds.clear()

    async def threshold(self, repo: Repository) -> str | None:
        hit, value = self._thresholds.get(repo.id)
        if not hit:
            value = blocking_severity(dict(await self.metadata.repository_tags(repo.id)))
            self._thresholds.put(repo.id, value)
        return value

    async def blocked_image(self, repo: Repository, record: ManifestRecord) -> Blocked | None:
        """The reason ``record`` must not be pulled from ``repo``, or None."""
        threshold = await self.threshold(repo)
        if threshold is None:
            return None
        scan = await self.metadata.get_scan(repo.id, record.digest)
        if scan is None:
            return await self._verdict(repo, record.digest, None, {}, threshold)
        return await self._verdict(repo, record.digest, scan.status, scan.severity_counts,
                                   threshold)

    async def blocked_layer(self, repo: Repository, digest: str) -> Blocked | None:
        """The reason blob ``digest`` must not be downloaded from ``repo``, or None: only
        when at least one image of the repository uses it and every one that does is
        blocked."""
        threshold = await self.threshold(repo)
        if threshold is None:
            return None
        first = None
        for image, status, counts in await self.metadata.parent_scans(repo.id, digest,
                                                                      kind="blob"):
            blocked = await self._verdict(repo, image, status, counts, threshold)
            if blocked is None:
                return None  # an image that may be pulled needs this layer
            first = first or blocked
        return first

    async def _verdict(self, repo: Repository, digest: str, status: str | None,
                       counts: dict[str, int], threshold: str) -> Blocked | None:
        """An image is judged by its own completed scan; a platform manifest that was never
        scanned on its own (an index is scanned as a whole) by the indexes that hold it:
        blocked when every one of them is."""
        if status == "COMPLETE":
            level = blocks(threshold, counts)
            return None if level is None else Blocked(digest, level, threshold, repo.name)
        if status is not None:
            return None  # in progress, failed or unsupported: nothing known to block
        first = None
        for index, index_status, index_counts in await self.metadata.parent_scans(
                repo.id, digest, kind="manifest"):
            level = blocks(threshold, index_counts) if index_status == "COMPLETE" else None
            if level is None:
                return None
            first = first or Blocked(index, level, threshold, repo.name)
        return first

    async def check(self, repo: Repository, record: ManifestRecord) -> None:
        """Raises: Denied naming the severity found and the repository's threshold."""
        blocked = await self.blocked_image(repo, record)
        if blocked is not None:
            raise Denied(f"pull refused: {blocked.reason()}", detail={"severity": blocked.level})

    async def check_layer(self, repo: Repository, digest: str) -> None:
        """Raises: Denied when only blocked images of the repository use the layer."""
        blocked = await self.blocked_layer(repo, digest)
        if blocked is not None:
            raise Denied(f"pull refused: layer {digest} belongs only to blocked images: "
                         f"{blocked.reason()}", detail={"severity": blocked.level})
