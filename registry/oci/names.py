"""Repository names and tags (reference A.1).

Every pattern here is matched with ``fullmatch``: ``re.match`` anchors only the start, and a
``$`` also matches before a trailing newline, so ``"app\\n"`` would pass for ``"app"``.
"""

from __future__ import annotations

import re

from registry.oci.errors import NameInvalid, TagInvalid

_NAME = re.compile(
    r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")

# ECR caps repository names at 256; clients cap host + "/" + name at 255 (reference A.1).
MAX_NAME_LENGTH = 255


def is_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and _NAME.fullmatch(name) is not None


def check_name(name: str) -> str:
    """Return ``name`` when it is a valid repository name.

    Raises:
        NameInvalid: the name breaks the grammar or the length limit.
    """
    if not is_name(name):
        raise NameInvalid(f"invalid repository name: {name[:300]!r}",
                          detail={"name": name[:300]})
    return name


def is_tag(text: str) -> bool:
    return _TAG.fullmatch(text) is not None


def check_tag(tag: str) -> str:
    """Return ``tag`` when it is a valid tag.

    Raises:
        TagInvalid: ``TAG_INVALID`` (400), Distribution's code for a tag it will not store.
    """
    if not is_tag(tag):
        raise TagInvalid(f"invalid tag: {tag[:200]!r}", detail={"tag": tag[:200]})
    return tag
