"""HTTP Range (RFC 9110 §14) for blob GET, and upload Content-Range parsing. Pure.

``parse_range`` is the one range selection every blob GET follows, whether the bytes then come
from the in-process cache or go out by sendfile, so both answer alike. Its rules, where RFC 9110
leaves a choice:

- no ``Range``, a unit other than ``bytes`` (which a server MUST ignore), or a ``Range`` with
  several ranges (which it MAY ignore, §14.2) -> the whole blob, ``200``;
- an ``If-Range`` that is not the blob's ETag (the strong ``"<digest>"``; Berth sends no
  ``Last-Modified``, so a date never validates) -> the whole blob, ``200`` (§13.1.5);
- a malformed byte range (``bytes=a-b``, ``bytes=-``, ``bytes=5-3``) -> ``416`` (§14.2 allows
  rejecting; Distribution's net/http and aiohttp do);
- a well-formed range selecting no byte (first byte at or past the end, ``bytes=-0``) -> ``416``;
- any well-formed range on an empty blob -> the (empty) whole blob, ``200``: no byte range
  of it exists to send, and net/http answers the same way;
- otherwise ``206`` with the range, its last byte clipped to the end of the blob.
"""

from __future__ import annotations

import re

_BYTE_RANGE = re.compile(r"[ \t]*([0-9]*)-([0-9]*)[ \t]*")
# OCI chunk ranges are "<start>-<end>"; some clients prefix "bytes " or "bytes=" and append
# "/<total>" or "/*", which we accept too.
_CHUNK = re.compile(r"(?:bytes[ =])?([0-9]+)-([0-9]+)(?:/(?:[0-9]+|\*))?")
# Positions beyond any blob; converting longer digit strings to int costs time for nothing
# (and past 4,300 digits raises ValueError).
_MAX_DIGITS = 19
_HUGE = 1 << 64


class Unsatisfiable(ValueError):
    """The Range header selects nothing, or is a malformed byte range: answer ``416``."""


def _position(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return _HUGE if len(digits) > _MAX_DIGITS else int(digits)


def parse_range(header: str | None, size: int, *, if_range: str | None = None,
                etag: str | None = None) -> tuple[int, int] | None:
    """Return the inclusive (first, last) byte positions a ``Range`` header selects.

    Args:
        header: the request's ``Range`` header, if any.
        size: the blob's length.
        if_range: the request's ``If-Range`` header, if any.
        etag: the blob's ETag, against which ``If-Range`` is compared.

    Returns:
        None to serve the whole blob (``200``), else the range to serve (``206``); the rules
        are in the module docstring.

    Raises:
        Unsatisfiable: a malformed byte range, or one that selects nothing (answer ``416``).
    """
    if not header:
        return None
    if if_range is not None and if_range.strip() != etag:
        return None
    unit, equals, ranges = header.partition("=")
    if not equals or unit.strip().lower() != "bytes" or "," in ranges:
        return None
    match = _BYTE_RANGE.fullmatch(ranges)
    if match is None or match.groups() == ("", ""):
        raise Unsatisfiable(header)
    first_text, last_text = match.groups()
    if first_text and last_text and _position(last_text) < _position(first_text):
        raise Unsatisfiable(header)
    if size == 0:
        return None
    if not first_text:  # suffix range: the last N bytes
        suffix = _position(last_text)
        if suffix == 0:
            raise Unsatisfiable(header)
        return max(0, size - suffix), size - 1
    first = _position(first_text)
    if first >= size:
        raise Unsatisfiable(header)
    last = _position(last_text) if last_text else size - 1
    return first, min(last, size - 1)


def parse_content_range(header: str) -> tuple[int, int] | None:
    """Parse an upload chunk's ``Content-Range``; None when malformed."""
    match = _CHUNK.fullmatch(header.strip())
    if match is None:
        return None
    start, end = _position(match.group(1)), _position(match.group(2))
    if end < start or end >= _HUGE:
        return None
    return start, end
