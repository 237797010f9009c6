"""Contract: two nodes (two stores on one database) racing on the same rows. PostgreSQL runs
READ COMMITTED, so these pass only because every check-then-write locks what it checks."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from registry.images import ImmutableTagError, tag_is_immutable
from registry.metadata.models import (
    ManifestRecord, Reference, RepositorySettings, StillReferencedError,
)
from tests.metadata.test_manifests import ACCOUNT, IMAGE, d, image


class Overlap:
    """Counts how many checks run at once; each holds the check open a moment, so without
    a lock two pushes would be inside together."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self._lock = threading.Lock()

    def check_tag(self, settings, digest: str, repository: str):
        def check(tag: str, current: str | None) -> None:
            with self._lock:
                self.inside += 1
                self.most = max(self.most, self.inside)
            try:
                time.sleep(0.05)  # widen the window a missing lock would leave open
                if current is not None and current != digest and tag_is_immutable(settings,
                                                                                   tag):
                    raise ImmutableTagError(tag, repository)
            finally:
                with self._lock:
                    self.inside -= 1
        return check


async def _push(store, repo, name: str, tag: str, overlap: Overlap):
    record = ManifestRecord(d(name), IMAGE, 1)
    await store.claim_blob(record.digest, 1)
    await store.put_manifest(repo.id, record, [tag], [],
                             check_tag=overlap.check_tag(repo.settings, record.digest,
                                                         repo.name))
    return record.digest


@pytest.mark.parametrize("round_", range(3))
async def test_immutable_tag_pushed_from_two_nodes_exactly_one_wins(store, store_factory,
                                                                    round_):
    other = store_factory()
    repo = await store.create_repository(ACCOUNT, "race/immutable",
                                         RepositorySettings(image_tag_mutability="IMMUTABLE"))
    overlap = Overlap()
    outcomes = await asyncio.gather(_push(store, repo, f"left{round_}", "v1", overlap),
                                    _push(other, repo, f"right{round_}", "v1", overlap),
                                    return_exceptions=True)
    winners = [o for o in outcomes if isinstance(o, str)]
    refused = [o for o in outcomes if isinstance(o, ImmutableTagError)]
    assert len(winners) == 1 and len(refused) == 1, outcomes
    assert (await store.resolve_tag(repo.id, "v1")).digest == winners[0]
    assert (await other.resolve_tag(repo.id, "v1")).digest == winners[0]
    assert overlap.most == 1


async def test_a_push_and_a_delete_of_its_child_never_leave_a_dangling_reference(
        store, store_factory):
    """An index push referencing a manifest races the manifest's delete: either the delete
    is refused (the index won) or the push is refused (the delete won); never both pass."""
    other = store_factory()
    repo = await store.ensure_repository(ACCOUNT, "race/refs")
    for round_ in range(4):
        child = await image(store, repo, f"child{round_}")
        parent = ManifestRecord(d(f"parent{round_}"), "application/vnd.oci.image.index.v1+json",
                                1, references=(Reference(child.digest, "manifest"),))
        await store.claim_blob(parent.digest, 1)
        outcomes = await asyncio.gather(
            store.put_manifest(repo.id, parent, [], []),
            other.delete_unreferenced_manifest(repo.id, child.digest, []),
            return_exceptions=True)
        pushed = not isinstance(outcomes[0], Exception)
        deleted = not isinstance(outcomes[1], Exception)
        assert pushed != deleted, outcomes
        if pushed:
            assert isinstance(outcomes[1], StillReferencedError)
            assert await store.get_manifest(repo.id, child.digest) is not None
        else:
            assert type(outcomes[0]).__name__ == "MissingReferencesError"
