"""registry/auth/listing.py: pages of visible names make progress and never name a hidden
one, whatever the pattern of hidden names and the page size (a property, plus a table)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.auth.listing import Cursor, visible_page


def listing(visible_flags: list[bool]):
    names = [f"repo-{i:04d}" for i in range(len(visible_flags))]
    shown = {n for n, flag in zip(names, visible_flags) if flag}

    async def fetch(cursor: Cursor, limit: int) -> list[str]:
        after = [n for n in names if cursor.after is None or n > cursor.after]
        return after[cursor.skip:cursor.skip + limit]

    async def visible(name: str) -> bool:
        return name in shown

    return names, shown, fetch, visible


async def walk(flags: list[bool], limit: int, budget: int) -> list[tuple[list[str], Cursor]]:
    _, shown, fetch, visible = listing(flags)
    pages, cursor = [], Cursor()
    for _ in range(10 * len(flags) + 10):
        page = await visible_page(fetch, visible, lambda n: n, cursor=cursor, limit=limit,
                                  budget=budget)
        pages.append((page.items, page.next))
        if page.next is None:
            return pages
        assert page.next.after is None or page.next.after in shown  # never a hidden name
        assert page.next != cursor  # progress
        cursor = page.next
    raise AssertionError("paging did not end")


@settings(max_examples=200, deadline=None)
@given(flags=st.lists(st.booleans(), max_size=60), limit=st.integers(1, 7),
       budget=st.integers(1, 9))
async def test_paging_returns_every_visible_name_once_in_order(flags, limit, budget):
    names = [f"repo-{i:04d}" for i in range(len(flags))]
    pages = await walk(flags, limit, budget)
    got = [name for items, _ in pages for name in items]
    assert got == [n for n, flag in zip(names, flags) if flag]
    assert all(len(items) <= limit for items, _ in pages)


CASES = [
    # (description, visibility pattern, limit, budget, expected first page, expected cursor)
    ("all visible, more than a page", "vvvv", 2, 100, ["repo-0000", "repo-0001"],
     Cursor("repo-0001")),
    ("hidden names between: scanned over", "hhvhhv", 2, 100, ["repo-0002", "repo-0005"],
     None),
    ("budget spent after one visible: resume after it", "vhhhhhv", 2, 3, ["repo-0000"],
     Cursor("repo-0000")),
    ("budget spent with nothing visible: a count, not a name", "hhhhhhv", 1, 3, [],
     Cursor(None, 4)),
    ("nothing at all", "", 3, 10, [], None),
]


@pytest.mark.parametrize("description, pattern, limit, budget, items, cursor", CASES,
                         ids=[c[0] for c in CASES])
async def test_first_page(description, pattern, limit, budget, items, cursor):
    _, _, fetch, visible = listing([c == "v" for c in pattern])
    page = await visible_page(fetch, visible, lambda n: n, cursor=Cursor(), limit=limit,
                              budget=budget)
    assert (page.items, page.next) == (items, cursor)


async def test_a_count_resumes_past_the_names_already_examined():
    _, _, fetch, visible = listing([c == "v" for c in "vhhhhhhv"])
    page = await visible_page(fetch, visible, lambda n: n, cursor=Cursor("repo-0000", 3),
                              limit=1, budget=2)
    assert (page.items, page.next) == ([], Cursor("repo-0000", 6))
