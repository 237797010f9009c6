"""Pushing an image manifest: the domain step shared by the OCI manifest PUT and ECR PutImage.

Parse and verify the manifest, stage its bytes, then in one metadata transaction check
references and tag mutability, publish the bytes, write manifest, references, tags and the
``image.pushed`` event. Callers map the typed errors to their own wire format.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Awaitable, Callable, Sequence

from registry.blobcache import BlobCache
from registry.metadata.database import SQLiteConn
from registry.metadata.models import (
    Event, ManifestRecord, MissingReferencesError, Repository, RepositorySettings,
)
from registry.metadata.store import SQLiteMetadataStore
from registry.metadata.writes import Write, apply
from registry.oci.digests import Digest, digest_bytes
from registry.oci.manifests import ParsedManifest, parse_manifest
from registry.storage.base import BlobStore


class ImmutableTagError(ValueError):
    def __init__(self, tag: str, repository: str) -> None:
        self.tag = tag
        self.repository = repository
        super().__init__(f"The image tag '{tag}' already exists in the '{repository}' repository "
                         "and cannot be overwritten because the repository is immutable.")


class ImageAlreadyExistsError(ValueError):
    def __init__(self, digest: str, tag: str | None) -> None:
        self.digest = digest
        self.tag = tag
        super().__init__(digest)


class ManifestDigestMismatchError(ValueError):
    def __init__(self, expected: Digest, actual: Digest) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"manifest digest is {actual}, not {expected}")


@dataclass(frozen=True, slots=True)
class PushedImage:
    digest: Digest
    parsed: ParsedManifest
    tags: tuple[str, ...]
    size: int


@lru_cache(maxsize=1024)
def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern) + r"\Z")


def tag_is_immutable(settings: RepositorySettings, tag: str) -> bool:
    """ECR's four mutability modes with WILDCARD exclusion filters (reference 12)."""
    excluded = any(_wildcard(f).match(tag) for f in settings.mutability_filters)
    mode = settings.image_tag_mutability
    if mode == "IMMUTABLE":
        return True
    if mode == "IMMUTABLE_WITH_EXCLUSION":
        return not excluded
    if mode == "MUTABLE_WITH_EXCLUSION":
        return excluded
    return False


async def put_image(*, metadata: SQLiteMetadataStore, blobs: BlobStore, cache: BlobCache,
                    repository: Repository, body: bytes, content_type: str | None,
                    tags: tuple[str, ...], expected_digest: Digest | None = None,
                    reject_unchanged: bool = False, announce: bool = True,
                    writes_for: Callable[[ManifestRecord], Awaitable[Sequence[Write]]]
                    | None = None) -> PushedImage:
    """Store a manifest and its tags atomically.

    ``reject_unchanged`` gives ECR PutImage's rule: pushing the same manifest with the same
    tag (or untagged, when it already exists) is ``ImageAlreadyExistsError``. ``announce``
    writes the ``image.pushed`` event (Berth's own SBOM referrers are not announced).
    ``writes_for(record)`` gives typed writes stored in the manifest's transaction (scan on
    push requests its scan there, so a push is never stored without its scan).

    Raises:
        ManifestInvalid (OCI error) for a malformed manifest, ManifestDigestMismatchError,
        MissingReferencesError, ImmutableTagError, ImageAlreadyExistsError.
    """
    digest = digest_bytes(body, expected_digest.algorithm if expected_digest else "sha256")
    if expected_digest is not None and expected_digest != digest:
        raise ManifestDigestMismatchError(expected_digest, digest)
    parsed = parse_manifest(body, content_type)
    record = parsed.record(digest, len(body))
    writes = list(await writes_for(record)) if writes_for is not None else []
    settings = repository.settings

    def check_tag(tag: str, current: str | None) -> None:
        if current == str(digest):
            if reject_unchanged:
                raise ImageAlreadyExistsError(str(digest), tag)
            return
        if current is not None and tag_is_immutable(settings, tag):
            raise ImmutableTagError(tag, repository.name)

    if reject_unchanged and not tags and await metadata.get_manifest(repository.id, str(digest)):
        raise ImageAlreadyExistsError(str(digest), None)
    staged = await blobs.stage_bytes(body, digest)
    event = Event("image.pushed", {"account": repository.account, "repository": repository.name,
                                   "digest": str(digest), "tags": list(tags),
                                   "mediaType": parsed.media_type})
    def publish() -> None:
        blobs.publish(staged)

    try:
        await metadata.put_manifest(repository.id, record, tags, publish,
                                    [event] if announce else [], check_tag=check_tag,
                                    extra=_legacy_writes(writes))
    except BaseException:
        blobs.discard(staged)
        raise
    cache.put(str(digest), body)
    return PushedImage(digest=digest, parsed=parsed, tags=tags, size=len(body))


def _legacy_writes(writes: Sequence[Write]):
    """Transitional: the legacy SQLite ``put_manifest`` takes a callback on its raw
    connection; the Core ``put_manifest(writes=...)`` replaces this."""
    if not writes:
        return None
    return lambda raw, _record: apply(SQLiteConn(raw, set()), writes, now=time.time())


__all__ = ["ImageAlreadyExistsError", "ImmutableTagError", "ManifestDigestMismatchError",
           "MissingReferencesError", "PushedImage", "put_image", "tag_is_immutable"]
