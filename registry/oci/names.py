"""Repository names and tags (reference A.1)."""

from __future__ import annotations

import re

from registry.oci.errors import NameInvalid, OCIError

_NAME = re.compile(
    r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")

# ECR caps repository names at 256; clients cap host + "/" + name at 255 (reference A.1).
MAX_NAME_LENGTH = 255


class TagInvalidError(OCIError):
    code, status, default_message = "MANIFEST_INVALID", 400, "invalid tag"


def check_name(name: str) -> str:
    """Return ``name`` when it is a valid repository name.

    Raises:
        NameInvalid: the name breaks the grammar or the length limit.
    """
    if len(name) > MAX_NAME_LENGTH or not _NAME.match(name):
        raise NameInvalid(f"invalid repository name: {name[:300]!r}",
                          detail={"name": name[:300]})
    return name


def is_tag(text: str) -> bool:
    return bool(_TAG.match(text))


def check_tag(tag: str) -> str:
    if not _TAG.match(tag):
        raise TagInvalidError(f"invalid tag: {tag[:200]!r}")
    return tag
