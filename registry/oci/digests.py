"""Digest grammar and hashing (image-spec descriptor.md).

Berth accepts ``sha256`` and ``sha512`` end to end. A digest string with a known algorithm
and a malformed encoded part is ``DIGEST_INVALID``; a well-formed digest with any other
algorithm is ``UNSUPPORTED`` (reference A.3).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from registry.oci.errors import DigestInvalid, OCIError

ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}

# algorithm ":" encoded, from the descriptor grammar
# Matched with fullmatch: a `$` would let "sha256:<hex>\n" through.
_GRAMMAR = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_HEX = re.compile(r"[a-f0-9]+")


class UnsupportedDigest(OCIError):
    code, status, default_message = "UNSUPPORTED", 400, "unsupported digest algorithm"


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def parse_digest(text: str) -> Digest:
    """Parse and check a digest string.

    Raises:
        DigestInvalid: the text is not a digest, or its encoded part is wrong for the algorithm.
        UnsupportedDigest: a well-formed digest with an algorithm Berth does not implement.
    """
    if not text or len(text) > 256 or not _GRAMMAR.fullmatch(text):
        raise DigestInvalid(f"invalid digest: {text[:80]!r}")
    algorithm, _, encoded = text.partition(":")
    length = ALGORITHMS.get(algorithm)
    if length is None:
        raise UnsupportedDigest(f"unsupported digest algorithm: {algorithm[:32]}")
    if len(encoded) != length or not _HEX.fullmatch(encoded):
        raise DigestInvalid(f"invalid {algorithm} digest: {text[:80]!r}")
    return Digest(algorithm, encoded)


def is_digest(text: str) -> bool:
    try:
        parse_digest(text)
    except OCIError:
        return False
    return True


def new_hasher(algorithm: str) -> "hashlib._Hash":
    if algorithm not in ALGORITHMS:
        raise UnsupportedDigest(f"unsupported digest algorithm: {algorithm[:32]}")
    return hashlib.new(algorithm)


def digest_bytes(data: bytes, algorithm: str = "sha256") -> Digest:
    return Digest(algorithm, hashlib.new(algorithm, data).hexdigest())
