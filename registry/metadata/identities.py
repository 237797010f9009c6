"""Accounts, users, access keys (secrets stored encrypted) and inline user policies.

The store keeps what the identity service (``registry/auth/identities.py``) decided: ids,
sealed secrets and validated documents arrive ready to store, so nothing here knows about
encryption or IAM's naming rules. What the store owns is the check-then-write rules, made
race-free on both backends:

    create user          INSERT ... ON CONFLICT (account, name) DO NOTHING: of two
                         concurrent creates one inserts, the other sees the conflict.
    access key limit     the owner's row is locked (FOR UPDATE) before the keys are counted,
                         so two concurrent creates cannot both see "one key".
    delete user          the same lock: a key cannot be added to a user being deleted.
    first user           a transaction-scoped advisory lock on PostgreSQL, BEGIN IMMEDIATE on
                         SQLite: of nodes starting at once exactly one sees an empty store.

Administration (CLI, first start, tests) is synchronous (``Database.*_sync``): those callers
run without an event loop. The request path (``lookup_access_key``, ``user_policies``) is
async, so on PostgreSQL a lookup never blocks the loop on the network.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite

from registry.metadata import tables as t
from registry.metadata.database import Conn, Database, query
from registry.metadata.identity_rows import (  # noqa: F401 - re-exported: the store's values
    AccessKey, AccessKeyLimitError, IdentityStoreError, NewAccessKey, NoSuchAccessKeyError,
    NoSuchUserError, NoSuchUserPolicyError, User, UserExistsError, UserInUseError,
)


# -- protocol ---------------------------------------------------------------------------------

class IdentityStore(Protocol):
    """The part of ``MetadataStore`` this module implements. Methods without ``async`` are
    synchronous on purpose (see the module docstring): never call them on the event loop."""

    def ensure_account(self, account: str, *, now: float) -> None:
        """Create the account unless it exists."""

    def list_accounts(self) -> list[str]:
        """Every account id, sorted."""

    def create_user(self, user: User) -> User:
        """Store ``user``, creating its account if needed; return it as stored (timestamps
        at the database's precision).

        Raises: UserExistsError (the name is taken in the account).
        """

    def get_user(self, account: str, name: str) -> User | None: ...

    def list_users(self, account: str | None) -> list[User]:
        """Users of ``account`` (every account when None), by account then name."""

    def delete_user(self, account: str, name: str, *, force: bool) -> None:
        """Delete a user; with ``force`` its access keys and inline policies too.

        Raises:
            NoSuchUserError: no such user.
            UserInUseError: (without ``force``) it still has access keys or policies.
        """

    def create_access_key(self, account: str, user_name: str, key: NewAccessKey, *,
                          limit: int) -> AccessKey:
        """Add an active key unless the user already has ``limit`` keys; return it as stored.

        Raises: NoSuchUserError, AccessKeyLimitError.
        """

    def list_access_keys(self, account: str, user_name: str) -> list[AccessKey]:
        """The user's keys, oldest first. Raises: NoSuchUserError."""

    def set_access_key_status(self, account: str, user_name: str, key_id: str,
                              status: str) -> None:
        """Raises: NoSuchUserError, NoSuchAccessKeyError (not this user's key)."""

    def delete_access_key(self, account: str, user_name: str, key_id: str) -> None:
        """Raises: NoSuchUserError, NoSuchAccessKeyError (not this user's key)."""

    async def lookup_access_key(self, key_id: str) -> tuple[User, str] | None:
        """The owner and sealed secret of an active key; None if unknown or inactive."""

    def sealed_secrets(self, *, after: str, limit: int) -> list[tuple[str, str]]:
        """``(access key id, sealed secret)`` of up to ``limit`` access keys, active or not,
        whose ids sort after ``after`` ("" for the first page), by id: every key exactly once
        when paged with ``after`` = the last id of the previous page."""

    def replace_sealed_secrets(self, changes: Sequence[tuple[str, str, str]]) -> int:
        """For each ``(access key id, expected, replacement)``, store ``replacement`` as the
        key's sealed secret if it still is ``expected`` (compare-and-swap: a key deleted or
        re-sealed meanwhile is left as it is); all in one transaction.

        Returns: how many secrets were replaced.
        """

    def put_user_policy(self, account: str, user_name: str, policy_name: str, document: str,
                        *, now: float) -> None:
        """Create or replace an inline policy. Raises: NoSuchUserError."""

    def get_user_policy(self, account: str, user_name: str, policy_name: str) -> str:
        """The document as stored. Raises: NoSuchUserError, NoSuchUserPolicyError."""

    def delete_user_policy(self, account: str, user_name: str, policy_name: str) -> None:
        """Raises: NoSuchUserError, NoSuchUserPolicyError."""

    def list_user_policies(self, account: str, user_name: str) -> list[str]:
        """Policy names, sorted. Raises: NoSuchUserError."""

    async def user_policies(self, user_id: str) -> list[tuple[str, str]]:
        """``(name, document)`` of every inline policy of the user, by name."""

    def create_first_user(self, user: User, key: NewAccessKey, *, policy_name: str,
                          policy_document: str, before_commit: Callable[[], None]
                          ) -> tuple[User, AccessKey] | None:
        """If no account exists yet, create ``user``'s account, the user, its policy and key
        in one transaction and return them as stored; else change nothing and return None.

        ``before_commit()`` runs inside that transaction: if it raises, nothing is stored and
        its error surfaces. Of concurrent callers (any node) exactly one gets the rows.
        """


# -- queries ----------------------------------------------------------------------------------

_u, _k, _p, _a = t.users, t.access_keys, t.user_policies, t.accounts
_USER = (_u.c.id, _u.c.account, _u.c.name, _u.c.arn, _u.c.created_at)
# Any constant both sides agree on; "berth-id" as a number: the first-start lock.
# Constants inline, not as parameters (every parameter of a query is passed by name).
_ACTIVE = sa.literal_column("'Active'")
_FIRST_USER_LOCK = int.from_bytes(b"berth-id", "big") & 0x7FFF_FFFF_FFFF_FFFF


def _insert(d: str, table: sa.Table):
    return (pg.insert if d == "postgresql" else sqlite.insert)(table)


def _user(row: tuple[Any, ...]) -> User:
    return User(id=row[0], account=row[1], name=row[2], arn=row[3], created_at=row[4])


@query
def _insert_account(d):
    return _insert(d, _a).values(id=sa.bindparam("account"), created_at=sa.bindparam("now")) \
        .on_conflict_do_nothing(index_elements=["id"])


@query
def _accounts(d):
    return sa.select(_a.c.id).order_by(_a.c.id)


@query
def _any_account(d):
    return sa.select(sa.exists().select_from(_a))


@query
def _first_user_lock(d):
    # Transaction-scoped: released at COMMIT or ROLLBACK, whatever happens in between.
    return sa.select(sa.func.pg_advisory_xact_lock(sa.bindparam("key", type_=sa.BigInteger)))


@query
def _insert_user(d):
    # A taken name is "no row returned", never a constraint error: the loser of a race on
    # PostgreSQL waits for the winner's commit, then sees the conflict.
    return _insert(d, _u).values(
        id=sa.bindparam("id"), account=sa.bindparam("account"), name=sa.bindparam("name"),
        arn=sa.bindparam("arn"), created_at=sa.bindparam("created_at"),
    ).on_conflict_do_nothing(index_elements=["account", "name"]).returning(_u.c.created_at)


def _user_query(*, lock: bool):
    def build(d):
        stmt = sa.select(*_USER).where(_u.c.account == sa.bindparam("account"),
                                       _u.c.name == sa.bindparam("name"))
        return stmt.with_for_update() if lock else stmt
    return query(build)


_find_user = _user_query(lock=False)
_lock_user = _user_query(lock=True)


@query
def _users(d):
    return sa.select(*_USER).order_by(_u.c.account, _u.c.name)


@query
def _account_users(d):
    return sa.select(*_USER).where(_u.c.account == sa.bindparam("account")) \
        .order_by(_u.c.name)


@query
def _delete_user(d):
    return sa.delete(_u).where(_u.c.id == sa.bindparam("user"))


@query
def _has_key(d):
    return sa.select(sa.exists().where(_k.c.user_id == sa.bindparam("user")))


@query
def _has_policy(d):
    return sa.select(sa.exists().where(_p.c.user_id == sa.bindparam("user")))


@query
def _delete_user_keys(d):
    return sa.delete(_k).where(_k.c.user_id == sa.bindparam("user"))


@query
def _delete_user_policies(d):
    return sa.delete(_p).where(_p.c.user_id == sa.bindparam("user"))


@query
def _count_keys(d):
    return sa.select(sa.func.count()).select_from(_k).where(_k.c.user_id == sa.bindparam("user"))


@query
def _insert_key(d):
    return sa.insert(_k).values(
        id=sa.bindparam("id"), user_id=sa.bindparam("user"),
        secret_ciphertext=sa.bindparam("sealed"), status=_ACTIVE,
        created_at=sa.bindparam("created_at")).returning(_k.c.created_at)


@query
def _keys(d):
    return (sa.select(_k.c.id, _k.c.status, _k.c.created_at)
            .where(_k.c.user_id == sa.bindparam("user")).order_by(_k.c.created_at, _k.c.id))


@query
def _set_key_status(d):
    return sa.update(_k).where(_k.c.id == sa.bindparam("key"),
                               _k.c.user_id == sa.bindparam("user")) \
        .values(status=sa.bindparam("status"))


@query
def _delete_key(d):
    return sa.delete(_k).where(_k.c.id == sa.bindparam("key"),
                               _k.c.user_id == sa.bindparam("user"))


@query
def _active_key(d):
    return (sa.select(*_USER, _k.c.secret_ciphertext).join(_u, _u.c.id == _k.c.user_id)
            .where(_k.c.id == sa.bindparam("key"), _k.c.status == _ACTIVE))


@query
def _sealed_page(d):
    return (sa.select(_k.c.id, _k.c.secret_ciphertext).where(_k.c.id > sa.bindparam("after"))
            .order_by(_k.c.id).limit(sa.bindparam("limit")))


@query
def _swap_sealed(d):
    return sa.update(_k).where(_k.c.id == sa.bindparam("key"),
                               _k.c.secret_ciphertext == sa.bindparam("expected")) \
        .values(secret_ciphertext=sa.bindparam("replacement"))


@query
def _upsert_policy(d):
    stmt = _insert(d, _p).values(
        user_id=sa.bindparam("user"), name=sa.bindparam("name"),
        document=sa.bindparam("document"), updated_at=sa.bindparam("now"))
    return stmt.on_conflict_do_update(
        index_elements=["user_id", "name"],
        set_={"document": stmt.excluded.document, "updated_at": stmt.excluded.updated_at})


@query
def _policy(d):
    return sa.select(_p.c.document).where(_p.c.user_id == sa.bindparam("user"),
                                          _p.c.name == sa.bindparam("name"))


@query
def _policies(d):
    return sa.select(_p.c.name, _p.c.document).where(_p.c.user_id == sa.bindparam("user")) \
        .order_by(_p.c.name)


@query
def _delete_policy(d):
    return sa.delete(_p).where(_p.c.user_id == sa.bindparam("user"),
                               _p.c.name == sa.bindparam("name"))


def _existing_user(conn: Conn, account: str, name: str, *, lock: bool = False) -> User:
    row = conn.one(_lock_user if lock else _find_user, account=account, name=name)
    if row is None:
        raise NoSuchUserError(account, name)
    return _user(row)


def _store_user(conn: Conn, user: User) -> User:
    conn.run(_insert_account, account=user.account, now=user.created_at)
    created_at = conn.scalar(_insert_user, id=user.id, account=user.account, name=user.name,
                             arn=user.arn, created_at=user.created_at)
    if created_at is None:
        raise UserExistsError(user.account, user.name)
    return dataclasses.replace(user, created_at=created_at)


def _store_key(conn: Conn, user: User, key: NewAccessKey, limit: int) -> AccessKey:
    if conn.scalar(_count_keys, user=user.id) >= limit:
        raise AccessKeyLimitError(limit)
    created_at = conn.scalar(_insert_key, id=key.id, user=user.id, sealed=key.sealed_secret,
                             created_at=key.created_at)
    return AccessKey(id=key.id, user_name=user.name, account=user.account, status="Active",
                     created_at=created_at)


# -- the mixin --------------------------------------------------------------------------------

class IdentityQueries:
    """``IdentityStore`` on a ``Database`` (``self.db``)."""

    db: Database

    def ensure_account(self, account: str, *, now: float) -> None:
        self.db.write_sync(lambda c: c.run(_insert_account, account=account, now=now))

    def list_accounts(self) -> list[str]:
        return [row[0] for row in self.db.read_sync(lambda c: c.all(_accounts))]

    def create_user(self, user: User) -> User:
        return self.db.write_sync(lambda c: _store_user(c, user))

    def get_user(self, account: str, name: str) -> User | None:
        row = self.db.read_sync(lambda c: c.one(_find_user, account=account, name=name))
        return None if row is None else _user(row)

    def list_users(self, account: str | None) -> list[User]:
        rows = self.db.read_sync(lambda c: c.all(_users) if account is None
                                 else c.all(_account_users, account=account))
        return [_user(row) for row in rows]

    def delete_user(self, account: str, name: str, *, force: bool) -> None:
        def delete(conn: Conn) -> None:
            user = _existing_user(conn, account, name, lock=True)
            if not force:
                if conn.scalar(_has_key, user=user.id):
                    raise UserInUseError("access keys")
                if conn.scalar(_has_policy, user=user.id):
                    raise UserInUseError("policies")
            conn.run(_delete_user_keys, user=user.id)
            conn.run(_delete_user_policies, user=user.id)
            conn.run(_delete_user, user=user.id)

        self.db.write_sync(delete)

    def create_access_key(self, account: str, user_name: str, key: NewAccessKey, *,
                          limit: int) -> AccessKey:
        return self.db.write_sync(lambda c: _store_key(
            c, _existing_user(c, account, user_name, lock=True), key, limit))

    def list_access_keys(self, account: str, user_name: str) -> list[AccessKey]:
        def read(conn: Conn) -> list[AccessKey]:
            user = _existing_user(conn, account, user_name)
            return [AccessKey(id=r[0], user_name=user.name, account=user.account, status=r[1],
                              created_at=r[2]) for r in conn.all(_keys, user=user.id)]

        return self.db.read_sync(read)

    def _change_key(self, account: str, user_name: str, key_id: str, q, **params: Any) -> None:
        def change(conn: Conn) -> None:
            user = _existing_user(conn, account, user_name)
            if conn.run(q, key=key_id, user=user.id, **params) == 0:
                raise NoSuchAccessKeyError(key_id)

        self.db.write_sync(change)

    def set_access_key_status(self, account: str, user_name: str, key_id: str,
                              status: str) -> None:
        self._change_key(account, user_name, key_id, _set_key_status, status=status)

    def delete_access_key(self, account: str, user_name: str, key_id: str) -> None:
        self._change_key(account, user_name, key_id, _delete_key)

    async def lookup_access_key(self, key_id: str) -> tuple[User, str] | None:
        row = await self.db.read(lambda c: c.one(_active_key, key=key_id))
        return None if row is None else (_user(row), row[5])

    def sealed_secrets(self, *, after: str, limit: int) -> list[tuple[str, str]]:
        rows = self.db.read_sync(lambda c: c.all(_sealed_page, after=after, limit=limit))
        return [(row[0], row[1]) for row in rows]

    def replace_sealed_secrets(self, changes: Sequence[tuple[str, str, str]]) -> int:
        def swap(conn: Conn) -> int:
            return sum(conn.run(_swap_sealed, key=key, expected=expected,
                                replacement=replacement)
                       for key, expected, replacement in changes)

        return self.db.write_sync(swap) if changes else 0

    def put_user_policy(self, account: str, user_name: str, policy_name: str, document: str,
                        *, now: float) -> None:
        def put(conn: Conn) -> None:
            user = _existing_user(conn, account, user_name)
            conn.run(_upsert_policy, user=user.id, name=policy_name, document=document, now=now)

        self.db.write_sync(put)

    def get_user_policy(self, account: str, user_name: str, policy_name: str) -> str:
        def read(conn: Conn) -> str:
            user = _existing_user(conn, account, user_name)
            document = conn.scalar(_policy, user=user.id, name=policy_name)
            if document is None:
                raise NoSuchUserPolicyError(policy_name)
            return document

        return self.db.read_sync(read)

    def delete_user_policy(self, account: str, user_name: str, policy_name: str) -> None:
        def delete(conn: Conn) -> None:
            user = _existing_user(conn, account, user_name)
            if conn.run(_delete_policy, user=user.id, name=policy_name) == 0:
                raise NoSuchUserPolicyError(policy_name)

        self.db.write_sync(delete)

    def list_user_policies(self, account: str, user_name: str) -> list[str]:
        def read(conn: Conn) -> list[str]:
            user = _existing_user(conn, account, user_name)
            return [row[0] for row in conn.all(_policies, user=user.id)]

        return self.db.read_sync(read)

    async def user_policies(self, user_id: str) -> list[tuple[str, str]]:
        rows = await self.db.read(lambda c: c.all(_policies, user=user_id))
        return [(row[0], row[1]) for row in rows]

    def create_first_user(self, user: User, key: NewAccessKey, *, policy_name: str,
                          policy_document: str, before_commit: Callable[[], None]
                          ) -> tuple[User, AccessKey] | None:
        def create(conn: Conn) -> tuple[User, AccessKey] | None:
            if conn.dialect == "postgresql":
                # Nothing to lock in an empty store; this lock is held by one first start.
                conn.scalar(_first_user_lock, key=_FIRST_USER_LOCK)
            if conn.scalar(_any_account):
                return None
            stored = _store_user(conn, user)
            conn.run(_upsert_policy, user=user.id, name=policy_name, document=policy_document,
                     now=user.created_at)
            access_key = _store_key(conn, stored, key, limit=1)
            before_commit()
            return stored, access_key

        return self.db.write_sync(create)
