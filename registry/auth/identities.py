"""Identities: accounts, users, access keys and inline user policies, stored in SQLite.

``IdentityStore`` is synchronous on purpose: the CLI calls it directly, while the server runs
(SQLite WAL lets the two share the file), and the server calls it from a thread, behind
``CredentialCache`` so the request path does not pay SQLite + AES-GCM on every request.

Semantics follow IAM where IAM has an answer: name patterns, two access keys per user,
``DeleteConflict`` when deleting a user that still has keys or policies, and the error codes
(``NoSuchEntity``, ``EntityAlreadyExists``, ``LimitExceeded``, ``MalformedPolicyDocument``,
``ValidationError``). Policies are validated with ``policies.parse_policy`` as identity policies
before anything is stored.
"""

from __future__ import annotations

import base64
import logging
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

from registry.auth.iam_rules import (
    ACCESS_KEY_ID, MAX_ACCESS_KEYS_PER_USER, DeleteConflict,
    EntityAlreadyExists, IdentityError, LimitExceeded, MalformedPolicyDocument, NoSuchEntity,
    ValidationError, _check_account, _check_policy_name, _check_user_name, _ID_ALPHABET,
    _SECRET_ALPHABET, validate_identity_policy,
)
from registry.auth.keys import SecretBox, load_or_create_master_key
from registry.metadata.migrate import upgrade_sqlite
from registry.metadata.sqlite_connect import connect

if TYPE_CHECKING:
    from registry.config import Config

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# -- records -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class User:
    id: str  # "AIDA" + 17 characters
    account: str
    name: str
    arn: str  # arn:aws:iam::<account>:user/<name>
    created_at: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class AccessKey:
    id: str  # "AKIA" + 16 characters
    user_name: str
    account: str
    status: str  # "Active" | "Inactive"
    created_at: float


def user_arn(account: str, name: str) -> str:
    return f"arn:aws:iam::{account}:user/{name}"


def _random_id(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def _new_secret() -> str:
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))


_USER_COLUMNS = "u.id, u.account, u.name, u.arn, u.created_at"


def _user(row: tuple[Any, ...]) -> User:
    return User(id=row[0], account=row[1], name=row[2], arn=row[3], created_at=row[4])


# -- the store ---------------------------------------------------------------------------------

class IdentityStore:
    """Accounts, users, access keys and inline policies in one SQLite database.

    ``database`` is the SQLite file (normally ``config.metadata_path``) or a factory returning
    an autocommit ``sqlite3.Connection`` usable from any thread. Every method is synchronous
    and thread-safe (one connection behind a lock; the statements are point queries).
    """

    def __init__(self, database: str | Path | Callable[[], sqlite3.Connection],
                 secret_box: SecretBox, *, clock: Callable[[], float] = time.time) -> None:
        if not callable(database):
            upgrade_sqlite(Path(database))
        self._conn = database() if callable(database) else connect(Path(database))
        self._box = secret_box
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Config) -> IdentityStore:
        """Open the store in ``config.metadata_path`` with the data dir's master key.

        Raises:
            MasterKeyError: the master key file is unusable.
        """
        box = SecretBox(load_or_create_master_key(config.data_dir))
        return cls(config.metadata_path, box)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- plumbing ------------------------------------------------------------------------------

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            rows: list[tuple[Any, ...]] = self._conn.execute(sql, params).fetchall()
            return rows

    def _write(self, fn: Callable[[sqlite3.Connection, float], _T]) -> _T:
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn, self._clock())
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

    @staticmethod
    def _find_user(conn: sqlite3.Connection, account: str, name: str) -> User:
        row = conn.execute(f"SELECT {_USER_COLUMNS} FROM users u WHERE u.account = ? "
                           "AND u.name = ?", (account, name)).fetchone()
        if row is None:
            raise NoSuchEntity(f"The user with name {name} cannot be found.")
        return _user(row)

    @staticmethod
    def _insert_account(conn: sqlite3.Connection, account: str, now: float) -> None:
        conn.execute("INSERT INTO accounts (id, created_at) VALUES (?, ?) "
                     "ON CONFLICT (id) DO NOTHING", (account, now))

    @staticmethod
    def _insert_user(conn: sqlite3.Connection, account: str, name: str, now: float) -> User:
        if conn.execute("SELECT 1 FROM users WHERE account = ? AND name = ?",
                        (account, name)).fetchone():
            raise EntityAlreadyExists(f"User with name {name} already exists.")
        user = User(id=_random_id("AIDA", 17), account=account, name=name,
                    arn=user_arn(account, name), created_at=now)
        conn.execute("INSERT INTO users (id, account, name, arn, created_at) "
                     "VALUES (?, ?, ?, ?, ?)",
                     (user.id, user.account, user.name, user.arn, user.created_at))
        return user

    def _insert_key(self, conn: sqlite3.Connection, user: User, now: float) -> tuple[AccessKey, str]:
        (count,) = conn.execute("SELECT COUNT(*) FROM access_keys WHERE user_id = ?",
                                (user.id,)).fetchone()
        if count >= MAX_ACCESS_KEYS_PER_USER:
            raise LimitExceeded(
                f"Cannot exceed quota for AccessKeysPerUser: {MAX_ACCESS_KEYS_PER_USER}")
        key = AccessKey(id=_random_id("AKIA", 16), user_name=user.name, account=user.account,
                        status="Active", created_at=now)
        secret = _new_secret()
        sealed = base64.b64encode(self._box.encrypt(secret, key_id=key.id)).decode("ascii")
        conn.execute("INSERT INTO access_keys (id, user_id, secret_ciphertext, status, "
                     "created_at) VALUES (?, ?, ?, ?, ?)",
                     (key.id, user.id, sealed, key.status, now))
        return key, secret

    @staticmethod
    def _put_policy(conn: sqlite3.Connection, user: User, name: str, document: str,
                    now: float) -> None:
        conn.execute("INSERT INTO user_policies (user_id, name, document, updated_at) "
                     "VALUES (?, ?, ?, ?) ON CONFLICT (user_id, name) DO UPDATE SET "
                     "document = excluded.document, updated_at = excluded.updated_at",
                     (user.id, name, document, now))

    # -- accounts and users --------------------------------------------------------------------

    def ensure_account(self, account: str) -> None:
        """Create the account if it does not exist.

        Raises:
            ValidationError: not a 12-digit account id.
        """
        _check_account(account)
        self._write(lambda conn, now: self._insert_account(conn, account, now))

    def list_accounts(self) -> list[str]:
        return [row[0] for row in self._read("SELECT id FROM accounts ORDER BY id")]

    def create_user(self, account: str, name: str) -> User:
        """Create user ``name`` in ``account`` (creating the account if needed).

        Raises:
            ValidationError: bad account id or user name.
            EntityAlreadyExists: the name is taken in this account.
        """
        _check_account(account)
        _check_user_name(name)

        def create(conn: sqlite3.Connection, now: float) -> User:
            self._insert_account(conn, account, now)
            return self._insert_user(conn, account, name, now)

        user = self._write(create)
        log.info("user created", extra={"user_arn": user.arn})
        return user

    def get_user(self, account: str, name: str) -> User:
        """Raises: NoSuchEntity."""
        with self._lock:
            return self._find_user(self._conn, account, name)

    def list_users(self, account: str | None = None) -> list[User]:
        """Users of ``account`` (every account when None), ordered by account and name."""
        where, params = ("WHERE u.account = ?", (account,)) if account is not None else ("", ())
        rows = self._read(f"SELECT {_USER_COLUMNS} FROM users u {where} "
                          "ORDER BY u.account, u.name", params)
        return [_user(row) for row in rows]

    def delete_user(self, account: str, name: str, *, force: bool = False) -> None:
        """Delete a user. Like IAM, refuse while it has access keys or policies, unless
        ``force`` (which deletes them with it).

        Raises:
            NoSuchEntity: no such user.
            DeleteConflict: the user still has access keys or inline policies.
        """
        def delete(conn: sqlite3.Connection, now: float) -> None:
            user = self._find_user(conn, account, name)
            for table, what in (("access_keys", "access keys"), ("user_policies", "policies")):
                if not force and conn.execute(f"SELECT 1 FROM {table} WHERE user_id = ?",
                                              (user.id,)).fetchone():
                    raise DeleteConflict(f"Cannot delete entity, must delete {what} first.")
                conn.execute(f"DELETE FROM {table} WHERE user_id = ?", (user.id,))
            conn.execute("DELETE FROM users WHERE id = ?", (user.id,))

        self._write(delete)
        log.info("user deleted", extra={"user_arn": user_arn(account, name)})

    # -- access keys ---------------------------------------------------------------------------

    def create_access_key(self, account: str, user_name: str) -> tuple[AccessKey, str]:
        """Create an access key; returns it with its secret, the only time the secret is shown.

        Raises:
            NoSuchEntity: no such user.
            LimitExceeded: the user already has two access keys.
        """
        def create(conn: sqlite3.Connection, now: float) -> tuple[AccessKey, str]:
            return self._insert_key(conn, self._find_user(conn, account, user_name), now)

        key, secret = self._write(create)
        log.info("access key created", extra={"user_arn": user_arn(account, user_name),
                                               "access_key_id": key.id})
        return key, secret

    def list_access_keys(self, account: str, user_name: str) -> list[AccessKey]:
        """Raises: NoSuchEntity."""
        user = self.get_user(account, user_name)
        rows = self._read("SELECT id, status, created_at FROM access_keys WHERE user_id = ? "
                          "ORDER BY created_at, id", (user.id,))
        return [AccessKey(id=r[0], user_name=user.name, account=user.account, status=r[1],
                          created_at=r[2]) for r in rows]

    def _change_key(self, account: str, user_name: str, key_id: str, sql: str,
                    params: tuple[Any, ...]) -> None:
        def change(conn: sqlite3.Connection, now: float) -> None:
            user = self._find_user(conn, account, user_name)
            if conn.execute(sql, (*params, key_id, user.id)).rowcount == 0:
                raise NoSuchEntity(f"The Access Key with id {key_id} cannot be found.")

        self._write(change)

    def update_access_key(self, account: str, user_name: str, key_id: str, status: str) -> None:
        """Set a key ``Active`` or ``Inactive`` (inactive keys do not authenticate).

        Raises:
            ValidationError: unknown status.
            NoSuchEntity: no such user, or the key is not this user's.
        """
        if status not in ("Active", "Inactive"):
            raise ValidationError(f"1 validation error detected: Value {status!r} at 'status' "
                                  "failed to satisfy constraint: Member must satisfy enum "
                                  "value set: [Active, Inactive]")
        self._change_key(account, user_name, key_id,
                         "UPDATE access_keys SET status = ? WHERE id = ? AND user_id = ?",
                         (status,))
        log.info("access key updated", extra={"access_key_id": key_id, "status": status})

    def delete_access_key(self, account: str, user_name: str, key_id: str) -> None:
        """Raises: NoSuchEntity (no such user, or the key is not this user's)."""
        self._change_key(account, user_name, key_id,
                         "DELETE FROM access_keys WHERE id = ? AND user_id = ?", ())
        log.info("access key deleted", extra={"access_key_id": key_id})

    def lookup_access_key(self, key_id: str) -> tuple[User, str] | None:
        """The owner and decrypted secret of an active key, or None (unknown or inactive).

        Raises:
            SecretBoxError: the stored secret does not decrypt (wrong master key, tampering);
                a server fault, not a client one.
        """
        if not isinstance(key_id, str) or not ACCESS_KEY_ID.fullmatch(key_id):
            return None
        rows = self._read(f"SELECT {_USER_COLUMNS}, k.secret_ciphertext FROM access_keys k "
                          "JOIN users u ON u.id = k.user_id "
                          "WHERE k.id = ? AND k.status = 'Active'", (key_id,))
        if not rows:
            return None
        secret = self._box.decrypt(base64.b64decode(rows[0][5]), key_id=key_id)
        return _user(rows[0]), secret

    # -- inline policies -----------------------------------------------------------------------

    def put_user_policy(self, account: str, user_name: str, policy_name: str,
                        document: str) -> None:
        """Create or replace an inline policy; nothing is stored unless it is valid.

        Raises:
            ValidationError: bad policy name.
            MalformedPolicyDocument: not a valid identity policy (``problems`` lists all).
            NoSuchEntity: no such user.
        """
        _check_policy_name(policy_name)
        validate_identity_policy(document, name=policy_name)

        def put(conn: sqlite3.Connection, now: float) -> None:
            self._put_policy(conn, self._find_user(conn, account, user_name), policy_name,
                             document, now)

        self._write(put)
        log.info("user policy stored", extra={"user_arn": user_arn(account, user_name),
                                               "policy_name": policy_name})

    def get_user_policy(self, account: str, user_name: str, policy_name: str) -> str:
        """The document text as stored. Raises: NoSuchEntity."""
        user = self.get_user(account, user_name)
        rows = self._read("SELECT document FROM user_policies WHERE user_id = ? AND name = ?",
                          (user.id, policy_name))
        if not rows:
            raise NoSuchEntity(f"The user policy with name {policy_name} cannot be found.")
        return rows[0][0]

    def delete_user_policy(self, account: str, user_name: str, policy_name: str) -> None:
        """Raises: NoSuchEntity."""
        def delete(conn: sqlite3.Connection, now: float) -> None:
            user = self._find_user(conn, account, user_name)
            if conn.execute("DELETE FROM user_policies WHERE user_id = ? AND name = ?",
                            (user.id, policy_name)).rowcount == 0:
                raise NoSuchEntity(f"The user policy with name {policy_name} cannot be found.")

        self._write(delete)
        log.info("user policy deleted", extra={"user_arn": user_arn(account, user_name),
                                                "policy_name": policy_name})

    def list_user_policies(self, account: str, user_name: str) -> list[str]:
        """Policy names, sorted. Raises: NoSuchEntity."""
        return [name for name, _ in self.policies_for(self.get_user(account, user_name))]

    def policies_for(self, user: User) -> list[tuple[str, str]]:
        """``(name, document_text)`` of every inline policy of ``user``, sorted by name."""
        rows = self._read("SELECT name, document FROM user_policies WHERE user_id = ? "
                          "ORDER BY name", (user.id,))
        return [(row[0], row[1]) for row in rows]

    # -- first start ---------------------------------------------------------------------------

    def create_first_user(
        self, *, account: str, user_name: str, policy_name: str, policy_document: str,
        before_commit: Callable[[User, AccessKey, str], None],
    ) -> tuple[User, AccessKey, str] | None:
        """If the store has no account yet, create ``account``, the user, its inline policy and
        an access key in ONE transaction, and return them with the secret; else return None.

        ``before_commit(user, key, secret)`` runs inside the transaction (the bootstrap writes
        the credentials file there): if it raises, nothing is committed. Two processes racing
        here create one user: SQLite's write lock serialises them and the loser sees the
        account; on a database without that lock the primary key on ``accounts`` and
        ``UNIQUE (account, name)`` make the loser fail, which is reported as None.

        Raises:
            ValidationError, MalformedPolicyDocument: bad arguments.
        """
        _check_account(account)
        _check_user_name(user_name)
        _check_policy_name(policy_name)
        validate_identity_policy(policy_document, name=policy_name)

        def create(conn: sqlite3.Connection, now: float) -> tuple[User, AccessKey, str] | None:
            if conn.execute("SELECT 1 FROM accounts").fetchone() is not None:
                return None
            conn.execute("INSERT INTO accounts (id, created_at) VALUES (?, ?)", (account, now))
            user = self._insert_user(conn, account, user_name, now)
            self._put_policy(conn, user, policy_name, policy_document, now)
            key, secret = self._insert_key(conn, user, now)
            before_commit(user, key, secret)
            return user, key, secret

        try:
            return self._write(create)
        except (sqlite3.IntegrityError, EntityAlreadyExists):
            return None


# -- request-path cache ------------------------------------------------------------------------


# The store's errors are part of its interface; they are defined with the naming rules.
__all__ = ["AccessKey", "DeleteConflict", "EntityAlreadyExists", "IdentityError", "IdentityStore",
           "LimitExceeded", "MalformedPolicyDocument", "NoSuchEntity", "User", "ValidationError",
           "user_arn"]
