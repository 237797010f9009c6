"""Master keys and what is derived from them.

A master key is 32 random bytes in a file readable by its owner only. Where it comes from is
``[keys]`` in the config::

    key_file = ""                     <data>/master.key, created on first use (one node)
    key_file = "/etc/berth/key"       the same file on every node; never created by Berth
    previous_key_files = ["/etc/berth/old.key"]   still accepted, during a rotation

A key file holds exactly the 32 key bytes, nothing else (no encoding, no newline): ``berth
keys generate PATH`` writes one, and so does ``head -c 32 /dev/urandom``. A file that group or
others may read or write is refused, as is one of another size.

Nothing uses a master key directly: every purpose gets its own key through HKDF-SHA256
(``derive_key``), so the box that seals access-key secrets and the registry-token signer never
share key material. Each master key has an id, ``master_key_id``: 16 hex digits of
HKDF(key, "key-id"), which names the key in sealed secrets and tokens without revealing it.

Stored secret formats (``SecretBox``), with the access key id as associated data, so that a
ciphertext copied onto another access key's row does not open::

    v2: 0x02 | master key id (8 bytes) | nonce (12 bytes) | AES-256-GCM ciphertext and tag
    v1: 0x01 | nonce (12 bytes) | AES-256-GCM ciphertext and tag     (before key ids; read only)

A v2 secret opens only under the key its id names (the version and id are associated data
too); a v1 secret was sealed by a data directory's master.key and is tried under every
configured key. ``berth keys rotate`` re-seals both kinds under the current key.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from registry.auth.tokens import TokenSigner
from registry.storage.syncio import fsync_dir

if TYPE_CHECKING:
    from registry.config import Config

MASTER_KEY_FILE = "master.key"
MASTER_KEY_BYTES = 32
KEY_ID_BYTES = 8
_NONCE_BYTES = 12
_TAG_BYTES = 16
_FORMAT_V1 = b"\x01"
_FORMAT_V2 = b"\x02"
_SECRET_BOX_PURPOSE = "access-key-secrets"
TOKEN_PURPOSE = "registry-token"


class MasterKeyError(RuntimeError):
    """A master key file is unusable (missing, exposed permissions, wrong size, unreadable)."""


class SecretBoxError(ValueError):
    """A stored secret does not open: tampered, bound to another access key, or sealed by a
    master key that is not configured."""


def master_key_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / MASTER_KEY_FILE


def derive_key(master_key: bytes, purpose: str, *, length: int = 32) -> bytes:
    """A key for one ``purpose`` (e.g. ``"registry-token"``), derived with HKDF-SHA256.

    Deterministic: every process (on every node) derives the same key from the same master
    key, so tokens signed by one are verified by all without a database round trip.
    """
    if not purpose:
        raise ValueError("purpose must not be empty")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
                info=b"berth/" + purpose.encode("utf-8"))
    return hkdf.derive(master_key)


def master_key_id(master_key: bytes) -> str:
    """The key's id: 16 lower-case hex digits, the same wherever the key is."""
    return derive_key(master_key, "key-id", length=KEY_ID_BYTES).hex()


# -- key files --------------------------------------------------------------------------------

def load_or_create_master_key(data_dir: str | os.PathLike[str]) -> bytes:
    """Return the data directory's master key, creating ``<data_dir>/master.key`` on first use.

    Creation is atomic and race-free across processes (see ``_create``): of concurrent
    creators one wins and the others read its key; no reader sees a partial file.

    Raises:
        MasterKeyError: the existing file is accessible to group or others, is not exactly 32
            bytes, or cannot be read.
    """
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = master_key_path(directory)
    if not path.exists():
        _create(path)
    return read_key_file(path)


def generate_key_file(path: str | os.PathLike[str]) -> bytes:
    """Write a new random master key to ``path`` (mode 0600) and return it.

    Raises:
        MasterKeyError: ``path`` exists (it is never overwritten: it may be the only copy of
            a key that opens stored secrets), or its directory cannot be written.
    """
    path = Path(path)
    try:
        created = _create(path)
    except OSError as exc:
        raise MasterKeyError(f"{path}: cannot write a key file: {exc.strerror}") from None
    if not created:
        raise MasterKeyError(f"{path}: exists; refusing to overwrite a key file")
    return read_key_file(path)


def _create(path: Path) -> bool:
    """Write 32 random bytes to ``path`` unless it exists; True when this call wrote them.

    The key is written and fsynced to a private temporary file (``O_CREAT|O_EXCL``, mode
    0600) which is then hard-linked to the final name: ``link`` fails if the name exists, so
    of concurrent creators exactly one wins, and nobody ever sees a partially written key.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(MASTER_KEY_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        fsync_dir(path.parent)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """The 32-byte master key in ``path``.

    Raises:
        MasterKeyError: the file is missing or unreadable, accessible to group or others, or
            not exactly 32 bytes.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        hint = (" (`berth keys generate PATH` makes one; copy it to every node)"
                if isinstance(exc, FileNotFoundError) else "")
        raise MasterKeyError(f"{path}: cannot open master key: {exc.strerror}{hint}") from None
    try:
        status = os.fstat(fd)
        # Writable by others is as bad as readable: whoever can replace the key can make the
        # server accept secrets they chose.
        if status.st_mode & 0o077:
            raise MasterKeyError(
                f"{path}: master key is accessible to group or others (mode "
                f"{stat.S_IMODE(status.st_mode):04o}); run `chmod 600 {path}` after checking "
                "who read it")
        if not stat.S_ISREG(status.st_mode):
            raise MasterKeyError(f"{path}: master key is not a regular file")
        key = os.read(fd, MASTER_KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(key) != MASTER_KEY_BYTES:
        found = max(len(key), status.st_size)
        raise MasterKeyError(f"{path}: master key must be exactly {MASTER_KEY_BYTES} bytes "
                             f"(raw, no encoding or newline), found {found}")
    return key


# -- the configured keys ----------------------------------------------------------------------

class MasterKeys:
    """The current master key, which seals and signs, and the previous ones, which still open
    and verify. Duplicates (the same key named twice) count once."""

    __slots__ = ("current", "previous")

    def __init__(self, current: bytes, previous: Iterable[bytes] = ()) -> None:
        """Raises: ValueError when a key is not 32 bytes."""
        keys = [current, *previous]
        if any(not isinstance(k, bytes) or len(k) != MASTER_KEY_BYTES for k in keys):
            raise ValueError(f"a master key is {MASTER_KEY_BYTES} bytes")
        self.current = current
        self.previous = tuple(k for i, k in enumerate(keys) if i and k not in keys[:i])

    def __repr__(self) -> str:
        return f"MasterKeys(current={self.current_id}, previous={list(self.ids()[1:])})"

    @property
    def current_id(self) -> str:
        return master_key_id(self.current)

    def ids(self) -> tuple[str, ...]:
        """Every key's id, the current one first."""
        return tuple(master_key_id(k) for k in (self.current, *self.previous))

    def derived(self, purpose: str) -> dict[str, bytes]:
        """``{key id: derive_key(key, purpose)}``, the current key first."""
        return {master_key_id(k): derive_key(k, purpose) for k in (self.current, *self.previous)}


def load_master_keys(config: Config, *, create: bool = True) -> MasterKeys:
    """The keys ``config`` names: ``[keys] key_file`` (default ``<data>/master.key``, created
    on first use unless ``create`` is false) and ``previous_key_files``.

    Raises:
        MasterKeyError: a named file is missing or unusable; with ``create`` false, the
            default file does not exist yet.
    """
    keys = config.keys
    if keys.key_file:
        current = read_key_file(keys.key_file)
    elif create:
        current = load_or_create_master_key(config.data_dir)
    else:
        path = master_key_path(config.data_dir)
        if not path.exists():
            raise MasterKeyError(f"{path}: no master key yet (the server creates it on first "
                                 "start), and [keys] key_file names none")
        current = read_key_file(path)
    return MasterKeys(current, [read_key_file(p) for p in keys.previous_key_files])


def token_signer(keys: MasterKeys) -> TokenSigner:
    """Registry tokens signed under the current key, verified under any configured one."""
    derived = keys.derived(TOKEN_PURPOSE)
    current = keys.current_id
    return TokenSigner(derived.pop(current), key_id=current, previous=derived)


# -- sealed secrets ---------------------------------------------------------------------------

class SecretBox:
    """AES-256-GCM sealing of access-key secrets, each bound to its access key id.

    Seals under ``derive_key(current master key, "access-key-secrets")``; opens what any
    configured key sealed. ``seal``/``open``/``reseal`` speak the text stored in the database
    (base64 of the bytes ``encrypt`` returns).
    """

    def __init__(self, keys: MasterKeys | bytes) -> None:
        """``keys``: the configured keys, or one master key. Raises: ValueError (not 32 bytes)."""
        if not isinstance(keys, MasterKeys):
            keys = MasterKeys(keys)
        self.master_key_id = keys.current_id
        self._aeads = {kid: AESGCM(key) for kid, key in keys.derived(_SECRET_BOX_PURPOSE).items()}

    @staticmethod
    def _aad(header: bytes, key_id: str) -> bytes:
        return header + b"berth-access-key:" + key_id.encode("utf-8")

    def encrypt(self, secret: str, *, key_id: str) -> bytes:
        """Seal ``secret`` for the access key ``key_id`` under the current master key (format
        v2); a fresh random nonce every call."""
        header = _FORMAT_V2 + bytes.fromhex(self.master_key_id)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        aead = self._aeads[self.master_key_id]
        return header + nonce + aead.encrypt(nonce, secret.encode("utf-8"),
                                             self._aad(header, key_id))

    def sealed_by(self, blob: bytes) -> str | None:
        """The id of the master key that sealed ``blob``; None for a v1 secret (which does not
        say). Raises: SecretBoxError (not a sealed secret)."""
        if blob[:1] == _FORMAT_V2 and len(blob) >= 1 + KEY_ID_BYTES + _NONCE_BYTES + _TAG_BYTES:
            return blob[1:1 + KEY_ID_BYTES].hex()
        if blob[:1] == _FORMAT_V1 and len(blob) >= 1 + _NONCE_BYTES + _TAG_BYTES:
            return None
        raise SecretBoxError("stored secret has an unknown format")

    def decrypt(self, blob: bytes, *, key_id: str) -> str:
        """Return the secret sealed by ``encrypt(secret, key_id=key_id)``, under any
        configured master key.

        Raises:
            SecretBoxError: unknown format, tampered ciphertext, another access key id, or a
                master key that is not configured.
        """
        try:
            sealer = self.sealed_by(blob)
        except SecretBoxError:
            raise SecretBoxError(f"stored secret for {key_id} has an unknown format") from None
        if sealer is None:
            header, candidates = _FORMAT_V1, list(self._aeads.values())
            aad = b"berth-access-key:" + key_id.encode("utf-8")
        else:
            if sealer not in self._aeads:
                raise SecretBoxError(
                    f"stored secret for {key_id} is sealed by master key {sealer}, which is "
                    "not configured (name its file in [keys] previous_key_files)")
            header, candidates = blob[:1 + KEY_ID_BYTES], [self._aeads[sealer]]
            aad = self._aad(header, key_id)
        nonce = blob[len(header):len(header) + _NONCE_BYTES]
        sealed = blob[len(header) + _NONCE_BYTES:]
        for aead in candidates:
            try:
                return aead.decrypt(nonce, sealed, aad).decode("utf-8")
            except InvalidTag:
                continue
        raise SecretBoxError(f"stored secret for {key_id} does not decrypt "
                             "(tampered, moved, or sealed by a master key not configured)")

    def seal(self, secret: str, *, key_id: str) -> str:
        """``encrypt`` as the text the metadata store keeps."""
        return base64.b64encode(self.encrypt(secret, key_id=key_id)).decode("ascii")

    def open(self, sealed: str, *, key_id: str) -> str:
        """``decrypt`` of stored text. Raises: SecretBoxError."""
        return self.decrypt(_unwrap(sealed, key_id), key_id=key_id)

    def reseal(self, sealed: str, *, key_id: str) -> str | None:
        """Stored text re-sealed under the current master key; None when it already is.

        Raises: SecretBoxError (the secret does not open).
        """
        blob = _unwrap(sealed, key_id)
        try:
            if self.sealed_by(blob) == self.master_key_id:
                return None
        except SecretBoxError:
            raise SecretBoxError(f"stored secret for {key_id} has an unknown format") from None
        return self.seal(self.decrypt(blob, key_id=key_id), key_id=key_id)


def _unwrap(sealed: str, key_id: str) -> bytes:
    try:
        return base64.b64decode(sealed, validate=True)
    except (binascii.Error, ValueError):
        raise SecretBoxError(f"stored secret for {key_id} is not base64") from None
