"""SHA-256 and SHA-512 whose state can be saved and resumed in another process.

An upload session keeps the hash of the bytes received so far. ``hashlib`` objects cannot
be serialised, so a chunk that arrives at another worker or node would have to re-read the
whole session to rebuild the hash. Like Distribution (which saves Go's resumable hash state
at each chunk boundary), Berth saves the state with the session instead: here the context
structs of OpenSSL's libcrypto (the same library, and the same accelerated block functions,
that ``hashlib`` uses), driven through ``ctypes``, which releases the GIL during each call.

A saved state is bound to the struct layout of this build of libcrypto (architecture, byte
order, struct size), recorded in its header; a state from a different layout is refused by
``restore`` (``None``) and the caller falls back to re-hashing the stored bytes. Without a
usable libcrypto, ``new`` returns plain ``hashlib`` objects whose ``state()`` is ``None``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import struct
import sys
from typing import Any

# OpenSSL's SHA256_CTX: h[8], Nl, Nh, data[16], num, md_len (32-bit words) = 112 bytes;
# SHA512_CTX: h[8], Nl, Nh (64-bit), a 128-byte block, num, md_len (32-bit) = 216 bytes.
_LAYOUTS = {"sha256": (112, "SHA256", 32), "sha512": (216, "SHA512", 64)}
_MAGIC = b"BRH1"
_HEADER = struct.Struct(">4s8sHQ")  # magic, layout tag, context size, bytes hashed


def _load_libcrypto() -> Any | None:
    name = ctypes.util.find_library("crypto")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        for _, prefix, _ in _LAYOUTS.values():
            for suffix, args in (("_Init", [ctypes.c_void_p]),
                                 ("_Update", [ctypes.c_void_p, ctypes.c_void_p,
                                              ctypes.c_size_t]),
                                 ("_Final", [ctypes.c_char_p, ctypes.c_void_p])):
                fn = getattr(lib, prefix + suffix)
                fn.argtypes = args
                fn.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return lib


_LIB = _load_libcrypto()
_LAYOUT_TAG = f"{sys.byteorder[0]}{ctypes.sizeof(ctypes.c_void_p)}".encode().ljust(8, b"-")


class ResumableHash:
    """A ``hashlib``-like SHA-256/SHA-512 with ``state()`` and ``restore()``."""

    __slots__ = ("name", "digest_size", "_ctx", "_update", "_final", "hashed")

    def __init__(self, name: str, ctx: ctypes.Array | None = None, hashed: int = 0) -> None:
        size, prefix, digest_size = _LAYOUTS[name]
        self.name = name
        self.digest_size = digest_size
        self._update = getattr(_LIB, prefix + "_Update")
        self._final = getattr(_LIB, prefix + "_Final")
        if ctx is None:
            ctx = ctypes.create_string_buffer(size)
            if getattr(_LIB, prefix + "_Init")(ctx) != 1:
                raise RuntimeError(f"libcrypto {prefix}_Init failed")
        self._ctx = ctx
        self.hashed = hashed  # bytes fed so far

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if isinstance(data, bytes):
            n, arg = len(data), data  # ctypes passes the object's own buffer
        else:
            view = memoryview(data).cast("B")
            n = view.nbytes
            arg = view.tobytes() if view.readonly else (ctypes.c_char * n).from_buffer(view)
        if n and self._update(self._ctx, arg, n) != 1:
            raise RuntimeError(f"libcrypto {self.name} update failed")
        self.hashed += n

    def copy(self) -> "ResumableHash":
        ctx = ctypes.create_string_buffer(self._ctx.raw, len(self._ctx))
        return ResumableHash(self.name, ctx, self.hashed)

    def digest(self) -> bytes:
        out = ctypes.create_string_buffer(self.digest_size)
        if self._final(out, self.copy()._ctx) != 1:
            raise RuntimeError(f"libcrypto {self.name} final failed")
        return out.raw

    def hexdigest(self) -> str:
        return self.digest().hex()

    def state(self) -> bytes:
        """The state after ``hashed`` bytes, for ``restore`` in any process of this build."""
        return _HEADER.pack(_MAGIC, _LAYOUT_TAG, len(self._ctx), self.hashed) + self._ctx.raw


def new(name: str) -> Any:
    """A fresh hash: resumable where libcrypto allows, else a plain ``hashlib`` object."""
    if _LIB is not None and name in _LAYOUTS:
        return ResumableHash(name)
    return hashlib.new(name)


def state_of(hasher: Any) -> bytes | None:
    """``hasher``'s saved state, or None when it cannot be saved."""
    return hasher.state() if isinstance(hasher, ResumableHash) else None


def restore(name: str, saved: bytes) -> ResumableHash | None:
    """The hash saved by ``state()``, or None when ``saved`` is not a state of ``name`` for
    this build's layout (then re-hash the bytes instead)."""
    if _LIB is None or name not in _LAYOUTS or len(saved) < _HEADER.size:
        return None
    magic, tag, size, hashed = _HEADER.unpack_from(saved)
    body = saved[_HEADER.size:]
    if magic != _MAGIC or tag != _LAYOUT_TAG or size != _LAYOUTS[name][0] \
            or len(body) != size:
        return None
    return ResumableHash(name, ctypes.create_string_buffer(body, size), hashed)


def hashed_bytes(saved: bytes) -> int | None:
    """How many bytes a saved state covers, or None when it is not a state."""
    if len(saved) < _HEADER.size:
        return None
    magic, _, _, hashed = _HEADER.unpack_from(saved)
    return hashed if magic == _MAGIC else None
