"""Listings filtered by authorization, without leaking what they hide.

``_catalog`` and DescribeRepositories show only the repositories the caller may describe. A
page must still make progress when long runs of hidden names sit between visible ones, and
its continuation (a ``Link`` header's ``last=``, a ``nextToken``) must never name a hidden
repository. So a page scans forward over hidden names until it holds ``limit`` visible ones
or the listing ends, examining at most ``budget`` names per request; it resumes after the
last VISIBLE name it returns (the next page re-examines the hidden names after it, which is
cheap: decisions are memoised). Only when a whole budget of names was hidden does the
continuation carry a count of names to pass over instead — a number, never a name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable, Generic, TypeVar

T = TypeVar("T")

SCAN_BUDGET = 10_000  # hidden names one request may examine beyond the page itself
MAX_SKIP = 10**9


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: after ``after`` (a name the caller was shown, or None for the
    beginning), passing over ``skip`` names that were all hidden from it."""

    after: str | None = None
    skip: int = 0

    @property
    def is_start(self) -> bool:
        return self.after is None and self.skip == 0


@dataclass(frozen=True)
class VisiblePage(Generic[T]):
    items: list[T]
    next: Cursor | None  # None: the listing ended


Fetch = Callable[[Cursor, int], Awaitable[list[T]]]


async def visible_page(fetch: Fetch, visible: Callable[[T], Awaitable[bool]],
                       key: Callable[[T], str], *, cursor: Cursor, limit: int,
                       budget: int = SCAN_BUDGET) -> VisiblePage[T]:
    """One page of the items the caller may see.

    Args:
        fetch: ``fetch(cursor, n)`` returns up to ``n`` items in name order after the
            cursor (skipping ``cursor.skip`` names first).
        visible: whether the caller may see an item (a refusal hides it; nothing is logged).
        key: an item's name, the listing's sort key.
        limit: the most items a page returns (at least 1).
        budget: how many names beyond ``limit`` one call may examine.
    """
    found: list[T] = []
    position, examined = cursor, 0
    batch = min(max(limit + 1, 200), 1000)
    while True:
        items = await fetch(position, batch)
        for item in items:
            examined += 1
            if await visible(item):
                found.append(item)
                if len(found) > limit:
                    return VisiblePage(found[:limit], Cursor(key(found[limit - 1])))
            if examined >= limit + budget:
                return VisiblePage(found, _resume(cursor, found, key, examined))
        if len(items) < batch:
            return VisiblePage(found, None)
        position = Cursor(key(items[-1]))


def _resume(cursor: Cursor, found: list[T], key: Callable[[T], str], examined: int) -> Cursor:
    if found:
        return Cursor(key(found[-1]))
    # Nothing visible in a whole budget: resume where this page started, past what it saw.
    return Cursor(cursor.after, min(cursor.skip + examined, MAX_SKIP))
