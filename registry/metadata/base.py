"""The metadata store protocol: repositories, manifests, tags, blob links, referrers, outbox.

The SQLite store is the default; PostgreSQL satisfies the same protocol later. Every write
that changes what a client can see is one transaction, and the outbox event describing it is
part of that transaction (DESIGN: data flow).
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

from registry.metadata.collect import CollectStore
from registry.metadata.delete_queries import TagDeletion
from registry.metadata.integrity import IntegrityStore
from registry.metadata.models import Event, ManifestRecord, Repository
from registry.metadata.scans import ScanStore


class MetadataStore(ScanStore, CollectStore, IntegrityStore, Protocol):
    async def get_repository(self, account: str, name: str) -> Repository | None: ...

    async def ensure_repository(self, account: str, name: str) -> Repository: ...

    async def list_repositories(self, account: str, *, last: str | None, limit: int,
                                skip: int = 0) -> list[str]:
        """Names after ``last`` in name order, passing over the first ``skip`` of them."""

    async def linked_blob_size(self, repository_id: int, digest: str) -> int | None:
        """Size of a blob linked into the repository, or None (the repo-scoped read rule)."""

    async def link_blob(self, repository_id: int, digest: str, size: int,
                        publish: Callable[[], None]) -> None:
        """Record a blob and link it into the repository; ``publish`` runs inside the
        transaction (it makes the bytes visible)."""

    async def mount_blob(self, source_repository_id: int, target_repository_id: int,
                         digest: str) -> int | None:
        """Link a blob that the source repository holds; return its size or None."""

    async def unlink_unreferenced_blob(self, repository_id: int, digest: str) -> bool:
        """Unlink a blob unless a manifest of the repository uses it; False if not linked.

        Raises: StillReferencedError (nothing changed).
        """

    async def touch_blob_link(self, repository_id: int, digest: str) -> None:
        """Renew a link's grace window (a client just checked the blob exists)."""

    async def get_manifest(self, repository_id: int, digest: str) -> ManifestRecord | None: ...

    async def resolve_tag(self, repository_id: int, tag: str) -> ManifestRecord | None: ...

    async def put_manifest(self, repository_id: int, manifest: ManifestRecord,
                           tags: Sequence[str], publish: Callable[[], None],
                           events: Sequence[Event],
                           check_tag: Callable[[str, str | None], None] | None = None) -> None:
        """Store a manifest, its references, tags and events in one transaction.

        ``check_tag(tag, current_digest)`` may raise to refuse moving a tag.

        Raises:
            MissingReferencesError: a referenced blob or child manifest is not in the
                repository.
        """

    async def delete_manifest(self, repository_id: int, digest: str,
                              events: Sequence[Event]) -> bool: ...

    async def delete_tag(self, repository_id: int, tag: str, events: Sequence[Event]) -> bool: ...

    async def delete_unreferenced_manifest(self, repository_id: int, digest: str,
                                           events: Sequence[Event]) -> list[str] | None:
        """Delete a manifest and its tags unless an index of the repository references it.

        Returns: the tags it had, or None when there is no such manifest.
        Raises: StillReferencedError (nothing changed).
        """

    async def delete_image_tag(self, repository_id: int, tag: str,
                               events: Callable[[str], Sequence[Event]]) -> TagDeletion | None:
        """Delete a tag, and in the same transaction the image it leaves untagged and
        unreferenced; ``events(digest)`` are written with it. None: no such tag."""

    async def list_tags(self, repository_id: int, *, last: str | None,
                        limit: int | None) -> list[str]: ...

    async def tags_for(self, repository_id: int, digest: str) -> list[str]: ...

    async def list_referrers(self, repository_id: int, subject_digest: str,
                             artifact_type: str | None) -> list[ManifestRecord]: ...

    async def close(self) -> None: ...
