"""Opaque ``nextToken`` values: the sort position after the last item returned.

A token that does not decode, or does not fit the listing it is used with, is an
InvalidParameterException, never a crash.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Callable, TypeVar

from policies.jsondoc import strict_loads
from registry.ecr.errors import InvalidParameterException

DEFAULT_PAGE = 100
_MAX_DEPTH = 4
T = TypeVar("T")


def invalid_token() -> InvalidParameterException:
    return InvalidParameterException("Invalid parameter at 'nextToken' failed to satisfy "
                                     "constraint: 'Invalid pagination token'")


def encode(position: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def decode(token: str | None) -> Any:
    if token is None:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        # A client can send any token: parse strictly (our positions nest 2 levels at most).
        return strict_loads(base64.urlsafe_b64decode(padded.encode()), max_depth=_MAX_DEPTH)
    except (ValueError, UnicodeError):
        raise invalid_token() from None


def _position(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def keyset(params: dict[str, Any], valid: Callable[[Any], bool], *,
           default: int = DEFAULT_PAGE) -> tuple[Any, int]:
    """For a listing the store pages itself: the position after which the requested page
    starts (None: the first page) and the page size. Query the store for one more item than
    the size, then shape the answer with ``next_page``.

    Raises:
        InvalidParameterException: the token does not decode or does not fit (``valid``).
    """
    after = decode(params.get("nextToken"))
    if after is not None and not valid(after):
        raise invalid_token()
    return after, params.get("maxResults") or default


def next_page(items: list[T], size: int, key: Callable[[T], Any]) -> tuple[list[T], str | None]:
    """The page of ``items`` (up to ``size + 1`` fetched) and the token of the next page."""
    chunk = items[:size]
    token = encode(_position(key(chunk[-1]))) if len(items) > size else None
    return chunk, token


def page(items: list[T], params: dict[str, Any], key: Callable[[T], Any], *,
         default: int = DEFAULT_PAGE) -> tuple[list[T], str | None]:
    """Return the page of ``items`` (already sorted by ``key``) the request asks for."""
    after = decode(params.get("nextToken"))
    if after is not None:
        try:
            items = [item for item in items if _position(key(item)) > after]
        except TypeError:
            raise invalid_token() from None
    size = params.get("maxResults") or default
    chunk = items[:size]
    token = encode(_position(key(chunk[-1]))) if len(items) > size else None
    return chunk, token
