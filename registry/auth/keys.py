"""The master key and what is derived from it.

``<data>/master.key`` holds 32 random bytes, created once, readable by the owner only. Nothing
uses it directly: every purpose gets its own key through HKDF-SHA256 (``derive_key``), so the
box that encrypts access-key secrets and the registry-token signer never share key material.

Stored secret format (``SecretBox``)::

    version (1 byte, 0x01) | nonce (12 bytes) | AES-256-GCM ciphertext and tag

with the access key id as associated data: a ciphertext copied onto another key's row does not
decrypt.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from registry.storage.syncio import fsync_dir

MASTER_KEY_FILE = "master.key"
MASTER_KEY_BYTES = 32
_NONCE_BYTES = 12
_FORMAT_V1 = b"\x01"
_SECRET_BOX_PURPOSE = "access-key-secrets"


class MasterKeyError(RuntimeError):
    """The master key file is unusable (exposed permissions, wrong size, unreadable)."""


class SecretBoxError(ValueError):
    """A stored secret does not decrypt: tampered, bound to another key id, or another master key."""


def master_key_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / MASTER_KEY_FILE


def load_or_create_master_key(data_dir: str | os.PathLike[str]) -> bytes:
    """Return the deployment's master key, creating ``<data_dir>/master.key`` on first use.

    Creation is atomic and race-free across processes: the key is written and fsynced to a
    private temporary file (``O_CREAT|O_EXCL``, mode 0600) which is then hard-linked to the final
    name. ``link`` fails if the name exists, so a concurrent creator that loses simply reads the
    winner's key, and no reader ever sees a partially written file.

    Raises:
        MasterKeyError: the existing file is accessible to group or others, is not exactly 32
            bytes, or cannot be read.
    """
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = master_key_path(directory)
    if not path.exists():
        _create(directory, path)
    return _read(path)


def _create(directory: Path, path: Path) -> None:
    tmp = directory / f".{MASTER_KEY_FILE}.{os.getpid()}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(MASTER_KEY_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return  # another process won; _read returns its key
        fsync_dir(directory)
    finally:
        tmp.unlink(missing_ok=True)


def _read(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise MasterKeyError(f"{path}: cannot open master key: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        # Writable by others is as bad as readable: whoever can replace the key can make the
        # server accept secrets they chose.
        if mode & 0o077:
            raise MasterKeyError(
                f"{path}: master key is accessible to group or others (mode "
                f"{stat.S_IMODE(mode):04o}); run `chmod 600 {path}` after checking who read it")
        key = handle.read(MASTER_KEY_BYTES + 1)
    if len(key) != MASTER_KEY_BYTES:
        raise MasterKeyError(f"{path}: master key must be exactly {MASTER_KEY_BYTES} bytes, "
                             f"found {len(key)}")
    return key


def derive_key(master_key: bytes, purpose: str, *, length: int = 32) -> bytes:
    """A key for one ``purpose`` (e.g. ``"registry-token"``), derived with HKDF-SHA256.

    Deterministic: every worker process derives the same key from the same master key, so
    tokens signed by one are verified by all without a database round trip.
    """
    if not purpose:
        raise ValueError("purpose must not be empty")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
                info=b"berth/" + purpose.encode("utf-8"))
    return hkdf.derive(master_key)


class SecretBox:
    """AES-256-GCM encryption of access-key secrets, each bound to its access key id.

    The box key is ``derive_key(master_key, "access-key-secrets")``; the master key itself never
    touches a cipher.
    """

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != MASTER_KEY_BYTES:
            raise ValueError(f"master key must be {MASTER_KEY_BYTES} bytes")
        self._aead = AESGCM(derive_key(master_key, _SECRET_BOX_PURPOSE))

    @staticmethod
    def _aad(key_id: str) -> bytes:
        return b"berth-access-key:" + key_id.encode("utf-8")

    def encrypt(self, secret: str, *, key_id: str) -> bytes:
        """Encrypt ``secret`` for the access key ``key_id``; a fresh random nonce every call."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode("utf-8"), self._aad(key_id))
        return _FORMAT_V1 + nonce + sealed

    def decrypt(self, blob: bytes, *, key_id: str) -> str:
        """Return the secret sealed by ``encrypt(secret, key_id=key_id)``.

        Raises:
            SecretBoxError: unknown format, tampered ciphertext, a different key id, or a
                different master key.
        """
        if len(blob) < 1 + _NONCE_BYTES + 16 or blob[:1] != _FORMAT_V1:
            raise SecretBoxError(f"stored secret for {key_id} has an unknown format")
        nonce, sealed = blob[1:1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES:]
        try:
            plain = self._aead.decrypt(nonce, sealed, self._aad(key_id))
        except InvalidTag:
            raise SecretBoxError(f"stored secret for {key_id} does not decrypt "
                                 "(tampered, moved or another master key)") from None
        return plain.decode("utf-8")
