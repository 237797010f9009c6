"""Contract: ListImages/DescribeImages pages — bounded keyset pages whose concatenation is the
whole listing, identical on both backends (byte order)."""

from __future__ import annotations

import pytest

from tests.metadata.test_manifests import ACCOUNT, d, image, index

# Tags in an order that differs between byte order and most locales.
TAGGED = {"one": ["B", "a"], "two": ["_", "é"], "three": [], "four": ["z"], "five": []}


@pytest.fixture
async def filled(store):
    repo = await store.ensure_repository(ACCOUNT, "team/app")
    records = {}
    for name, tags in TAGGED.items():
        records[name] = await image(store, repo, name, tags, layers=("config", f"layer-{name}"))
    return repo, records


def expected_ids(status: str) -> list[tuple[str, str]]:
    pairs = []
    for name, tags in TAGGED.items():
        if tags and status != "UNTAGGED":
            pairs += [(d(name), t) for t in tags]
        if not tags and status != "TAGGED":
            pairs.append((d(name), ""))
    return sorted(pairs, key=lambda p: (p[0], p[1].encode()))


@pytest.mark.parametrize("status", ["ANY", "TAGGED", "UNTAGGED"])
@pytest.mark.parametrize("size", [1, 2, 3, 100])
async def test_image_id_pages_concatenate_to_the_listing(store, filled, status, size):
    repo, _ = filled
    listed, after = [], None
    while True:
        page = await store.list_image_ids(repo.id, tag_status=status, after=after,
                                          limit=size + 1)
        listed += page[:size]
        if len(page) <= size:
            break
        after = page[size - 1]
    assert listed == expected_ids(status)


@pytest.mark.parametrize("status", ["ANY", "TAGGED", "UNTAGGED"])
@pytest.mark.parametrize("size", [1, 2, 100])
async def test_image_pages_carry_tags_and_sizes(store, filled, status, size):
    repo, records = filled
    images, after = [], None
    while True:
        page = await store.image_page(repo.id, tag_status=status, after=after, limit=size + 1)
        images += page[:size]
        if len(page) <= size:
            break
        after = page[size - 1].manifest.digest
    wanted = sorted((d(n), tuple(sorted(t, key=str.encode))) for n, t in TAGGED.items()
                    if status == "ANY" or (status == "TAGGED") == bool(t))
    assert [(i.manifest.digest, i.tags) for i in images] == wanted
    # imageSizeInBytes: the referenced blobs (10 bytes each, see tests/metadata/test_manifests).
    assert {i.size_with_layers for i in images} <= {20}
    for i in images:
        assert i.manifest == await store.get_manifest(repo.id, i.manifest.digest)


async def test_an_index_counts_no_blob_bytes(store, filled):
    repo, records = filled
    parent = await index(store, repo, "parent", [records["one"]], ["multi"])
    found = await store.images_by_digest(repo.id, [parent.digest])
    assert found[parent.digest].size_with_layers == 0
    assert await store.manifest_size_with_layers(repo.id, records["one"].digest) == 20


async def test_unknown_tag_status_is_refused(store, filled):
    repo, _ = filled
    with pytest.raises(ValueError):
        await store.list_image_ids(repo.id, tag_status="SOME", after=None, limit=2)
