"""HTTP Range (RFC 9110 §14) for blob GET, and upload Content-Range parsing. Pure."""

from __future__ import annotations

import re

_BYTES = re.compile(r"^bytes=(\d*)-(\d*)$")
# OCI chunk ranges are "<start>-<end>"; some clients prefix "bytes " or "bytes=" and append
# "/<total>" or "/*", which we accept too.
_CHUNK = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?$")


class Unsatisfiable(ValueError):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Return the inclusive (first, last) byte positions a ``Range`` header selects.

    None means "serve the whole representation" (no header, or one we ignore as RFC 9110
    allows: multiple ranges or a unit other than bytes).

    Raises:
        Unsatisfiable: a syntactically valid range that selects nothing (answer 416).
    """
    if not header:
        return None
    header = header.strip()
    if "," in header or not header.startswith("bytes="):
        return None
    match = _BYTES.match(header)
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:  # suffix range: the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise Unsatisfiable(header)
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last < first or first >= size:
        raise Unsatisfiable(header)
    return first, min(last, size - 1)


def parse_content_range(header: str) -> tuple[int, int] | None:
    """Parse an upload chunk's ``Content-Range``; None when malformed."""
    match = _CHUNK.match(header.strip())
    if match is None:
        return None
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        return None
    return start, end
