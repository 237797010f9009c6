"""Identities over the metadata store, on SQLite and PostgreSQL: users, access keys and inline
policies with IAM's rules; secrets encrypted at rest; the credential cache."""

from __future__ import annotations

import base64
import json
import re

import pytest
import sqlalchemy as sa

from registry.auth.credential_cache import CredentialCache
from registry.auth.identities import (
    AccessKey, DeleteConflict, EntityAlreadyExists, Identities,
    LimitExceeded, MalformedPolicyDocument, NoSuchEntity, User, ValidationError,
)
from registry.auth.keys import SecretBox, SecretBoxError
from registry.metadata import tables as t
from registry.metadata.database import query
from registry.metadata.migrate import current, head
from tests.identities.conftest import (
    ACCOUNT, BROKEN_POLICY, OTHER_ACCOUNT, PULL_POLICY, PUSH_POLICY, Clock,
)

USER_ID = re.compile(r"AIDA[A-Z2-7]{17}")
KEY_ID = re.compile(r"AKIA[A-Z2-7]{16}")
SECRET = re.compile(r"[A-Za-z0-9+/]{40}")


# What is really stored, read and changed through the store's own Conn seam (any backend).
@query
def _stored_secret(d):
    return sa.select(t.access_keys.c.secret_ciphertext).where(
        t.access_keys.c.id == sa.bindparam("key"))


@query
def _overwrite_secret(d):
    return sa.update(t.access_keys).where(t.access_keys.c.id == sa.bindparam("key")).values(
        secret_ciphertext=sa.bindparam("sealed"))


def stored_secret(metadata, key_id: str) -> str:
    return metadata.db.read_sync(lambda c: c.scalar(_stored_secret, key=key_id))


# -- users -------------------------------------------------------------------------------------

def test_create_user_returns_an_iam_shaped_user(store):
    user = store.create_user(ACCOUNT, "alice")
    assert USER_ID.fullmatch(user.id) and len(user.id) == 21
    assert (user.account, user.name) == (ACCOUNT, "alice")
    assert user.arn == "arn:aws:iam::000000000000:user/alice"
    assert store.get_user(ACCOUNT, "alice") == user
    assert store.list_accounts() == [ACCOUNT]
    with pytest.raises(AttributeError):
        user.name = "mallory"  # type: ignore[misc]


def test_a_name_is_unique_within_an_account_only(store):
    store.create_user(ACCOUNT, "alice")
    with pytest.raises(EntityAlreadyExists, match="User with name alice already exists."):
        store.create_user(ACCOUNT, "alice")
    other = store.create_user(OTHER_ACCOUNT, "alice")
    assert other.arn == "arn:aws:iam::111122223333:user/alice"


@pytest.mark.parametrize("name", ["a", "a+b=c,d.e@f-g_h", "x" * 64, "0"])
def test_valid_user_names(store, name):
    assert store.create_user(ACCOUNT, name).name == name


@pytest.mark.parametrize("name", ["", "x" * 65, "a b", "a/b", "a:b", "ä", "a*"])
def test_invalid_user_names_are_a_validation_error(store, name):
    with pytest.raises(ValidationError, match="userName"):
        store.create_user(ACCOUNT, name)
    assert store.list_users() == []


@pytest.mark.parametrize("account", ["", "12345678901", "1234567890123", "abcdefghijkl"])
def test_invalid_account_ids_are_a_validation_error(store, account):
    with pytest.raises(ValidationError, match="account"):
        store.create_user(account, "alice")


def test_list_users_orders_by_account_then_name_and_filters(store):
    for account, name in [(OTHER_ACCOUNT, "b"), (ACCOUNT, "z"), (ACCOUNT, "a")]:
        store.create_user(account, name)
    assert [(u.account, u.name) for u in store.list_users()] == [
        (ACCOUNT, "a"), (ACCOUNT, "z"), (OTHER_ACCOUNT, "b")]
    assert [u.name for u in store.list_users(OTHER_ACCOUNT)] == ["b"]
    assert store.list_users("999999999999") == []


def test_get_missing_user_is_no_such_entity(store):
    with pytest.raises(NoSuchEntity, match="The user with name ghost cannot be found."):
        store.get_user(ACCOUNT, "ghost")


def test_delete_user_refuses_while_keys_or_policies_remain(store):
    store.create_user(ACCOUNT, "alice")
    key, _ = store.create_access_key(ACCOUNT, "alice")
    store.put_user_policy(ACCOUNT, "alice", "pull", PULL_POLICY)
    with pytest.raises(DeleteConflict, match="must delete access keys first"):
        store.delete_user(ACCOUNT, "alice")
    store.delete_access_key(ACCOUNT, "alice", key.id)
    with pytest.raises(DeleteConflict, match="must delete policies first"):
        store.delete_user(ACCOUNT, "alice")
    store.delete_user_policy(ACCOUNT, "alice", "pull")
    store.delete_user(ACCOUNT, "alice")
    assert store.list_users() == []
    with pytest.raises(NoSuchEntity):
        store.delete_user(ACCOUNT, "alice")


async def test_forced_delete_takes_keys_and_policies_along(store):
    store.create_user(ACCOUNT, "alice")
    key, _ = store.create_access_key(ACCOUNT, "alice")
    store.put_user_policy(ACCOUNT, "alice", "pull", PULL_POLICY)
    store.delete_user(ACCOUNT, "alice", force=True)
    assert await store.lookup_access_key(key.id) is None
    recreated = store.create_user(ACCOUNT, "alice")
    assert await store.policies_for(recreated) == []
    assert store.list_access_keys(ACCOUNT, "alice") == []


# -- access keys -------------------------------------------------------------------------------

async def test_access_key_lifecycle(store, metadata):
    alice = store.create_user(ACCOUNT, "alice")
    key, secret = store.create_access_key(ACCOUNT, "alice")
    assert KEY_ID.fullmatch(key.id) and len(key.id) == 20
    assert SECRET.fullmatch(secret)
    assert (key.user_name, key.account, key.status) == ("alice", ACCOUNT, "Active")
    assert await store.lookup_access_key(key.id) == (alice, secret)
    assert store.list_access_keys(ACCOUNT, "alice") == [key]

    raw = stored_secret(metadata, key.id)
    assert secret not in raw and secret.encode() not in base64.b64decode(raw)

    store.delete_access_key(ACCOUNT, "alice", key.id)
    assert await store.lookup_access_key(key.id) is None
    with pytest.raises(NoSuchEntity, match=f"The Access Key with id {key.id} cannot be found."):
        store.delete_access_key(ACCOUNT, "alice", key.id)


def test_at_most_two_access_keys_per_user(store):
    store.create_user(ACCOUNT, "alice")
    first, _ = store.create_access_key(ACCOUNT, "alice")
    store.create_access_key(ACCOUNT, "alice")
    with pytest.raises(LimitExceeded, match="Cannot exceed quota for AccessKeysPerUser: 2"):
        store.create_access_key(ACCOUNT, "alice")
    assert len(store.list_access_keys(ACCOUNT, "alice")) == 2
    store.delete_access_key(ACCOUNT, "alice", first.id)
    store.create_access_key(ACCOUNT, "alice")


def test_access_key_for_a_missing_user(store):
    with pytest.raises(NoSuchEntity):
        store.create_access_key(ACCOUNT, "ghost")


async def test_a_key_can_only_be_deleted_through_its_owner(store):
    store.create_user(ACCOUNT, "alice")
    store.create_user(ACCOUNT, "bob")
    key, _ = store.create_access_key(ACCOUNT, "alice")
    with pytest.raises(NoSuchEntity):
        store.delete_access_key(ACCOUNT, "bob", key.id)
    assert await store.lookup_access_key(key.id) is not None


async def test_inactive_keys_do_not_authenticate(store):
    store.create_user(ACCOUNT, "alice")
    key, secret = store.create_access_key(ACCOUNT, "alice")
    store.update_access_key(ACCOUNT, "alice", key.id, "Inactive")
    assert await store.lookup_access_key(key.id) is None
    assert store.list_access_keys(ACCOUNT, "alice")[0].status == "Inactive"
    store.update_access_key(ACCOUNT, "alice", key.id, "Active")
    assert (await store.lookup_access_key(key.id))[1] == secret
    with pytest.raises(ValidationError):
        store.update_access_key(ACCOUNT, "alice", key.id, "Disabled")


@pytest.mark.parametrize("key_id", ["", "AKIA", "akiaaaaaaaaaaaaaaaaa", "AKIA0000000000000000",
                                    "ASIAAAAAAAAAAAAAAAAA", "AKIAAAAAAAAAAAAAAAAA'--"])
async def test_unknown_or_malformed_key_ids_are_not_found(store, key_id):
    assert await store.lookup_access_key(key_id) is None


async def test_a_ciphertext_moved_to_another_key_does_not_decrypt(store, metadata):
    store.create_user(ACCOUNT, "alice")
    first, _ = store.create_access_key(ACCOUNT, "alice")
    second, _ = store.create_access_key(ACCOUNT, "alice")
    stolen = stored_secret(metadata, first.id)
    metadata.db.write_sync(lambda c: c.run(_overwrite_secret, key=second.id, sealed=stolen))
    assert await store.lookup_access_key(first.id) is not None
    with pytest.raises(SecretBoxError):
        await store.lookup_access_key(second.id)


async def test_another_master_key_cannot_read_the_secrets(store, metadata):
    store.create_user(ACCOUNT, "alice")
    key, _ = store.create_access_key(ACCOUNT, "alice")
    intruder = Identities(metadata, SecretBox(bytes(32)))
    with pytest.raises(SecretBoxError):
        await intruder.lookup_access_key(key.id)


async def test_a_second_process_store_sees_changes_at_once(store, store_factory, box):
    """The CLI and the server (or two nodes) open the same database: committed writes are
    seen at once."""
    server = Identities(store_factory(), box)
    store.create_user(ACCOUNT, "alice")
    key, secret = store.create_access_key(ACCOUNT, "alice")
    assert (await server.lookup_access_key(key.id))[1] == secret
    store.delete_access_key(ACCOUNT, "alice", key.id)
    assert await server.lookup_access_key(key.id) is None


def test_schema_is_applied_once_and_survives_reopening(store, store_factory, box):
    store.create_user(ACCOUNT, "alice")
    again = store_factory()
    assert [u.name for u in Identities(again, box).list_users()] == ["alice"]
    assert current(again.db.engine()) == head()


# -- inline policies ---------------------------------------------------------------------------

async def test_put_get_list_delete_user_policies(store):
    alice = store.create_user(ACCOUNT, "alice")
    store.put_user_policy(ACCOUNT, "alice", "push", PUSH_POLICY)
    store.put_user_policy(ACCOUNT, "alice", "pull", PULL_POLICY)
    assert store.get_user_policy(ACCOUNT, "alice", "pull") == PULL_POLICY
    assert store.list_user_policies(ACCOUNT, "alice") == ["pull", "push"]
    assert await store.policies_for(alice) == [("pull", PULL_POLICY), ("push", PUSH_POLICY)]
    store.put_user_policy(ACCOUNT, "alice", "pull", PUSH_POLICY)  # replace
    assert store.get_user_policy(ACCOUNT, "alice", "pull") == PUSH_POLICY
    store.delete_user_policy(ACCOUNT, "alice", "pull")
    assert store.list_user_policies(ACCOUNT, "alice") == ["push"]
    with pytest.raises(NoSuchEntity, match="The user policy with name pull cannot be found."):
        store.get_user_policy(ACCOUNT, "alice", "pull")
    with pytest.raises(NoSuchEntity):
        store.delete_user_policy(ACCOUNT, "alice", "pull")


async def test_an_invalid_policy_reports_every_problem_and_keeps_the_previous(store):
    alice = store.create_user(ACCOUNT, "alice")
    store.put_user_policy(ACCOUNT, "alice", "pull", PULL_POLICY)
    with pytest.raises(MalformedPolicyDocument) as caught:
        store.put_user_policy(ACCOUNT, "alice", "pull", BROKEN_POLICY)
    paths = [problem.path for problem in caught.value.problems]
    assert paths == ["Statement[0].Effect", "Statement[1].Condition.StringEqualz"]
    assert caught.value.code == "MalformedPolicyDocument" and caught.value.status == 400
    assert await store.policies_for(alice) == [("pull", PULL_POLICY)]


@pytest.mark.parametrize("document, problem", [
    ("{not json", "Syntax errors in policy."),
    (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*",
                 "Resource": "*", "Principal": "*"}]}), "Statement[0].Principal"),
    (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*"}]}),
     "must contain resources"),
])
def test_what_is_not_an_identity_policy_is_never_stored(store, document, problem):
    store.create_user(ACCOUNT, "alice")
    with pytest.raises(MalformedPolicyDocument) as caught:
        store.put_user_policy(ACCOUNT, "alice", "new", document)
    assert problem in str(caught.value)
    assert store.list_user_policies(ACCOUNT, "alice") == []


def test_policy_name_and_user_are_checked(store):
    store.create_user(ACCOUNT, "alice")
    with pytest.raises(ValidationError, match="policyName"):
        store.put_user_policy(ACCOUNT, "alice", "bad name", PULL_POLICY)
    with pytest.raises(NoSuchEntity):
        store.put_user_policy(ACCOUNT, "ghost", "pull", PULL_POLICY)
    with pytest.raises(NoSuchEntity):
        store.list_user_policies(ACCOUNT, "ghost")


# -- credential cache --------------------------------------------------------------------------

class CountingStore:
    """The real identities, counting the lookups that reach them."""

    def __init__(self, store: Identities) -> None:
        self.store = store
        self.key_lookups = 0
        self.policy_lookups = 0

    async def lookup_access_key(self, key_id: str) -> tuple[User, str] | None:
        self.key_lookups += 1
        return await self.store.lookup_access_key(key_id)

    async def policies_for(self, user: User) -> list[tuple[str, str]]:
        self.policy_lookups += 1
        return await self.store.policies_for(user)


async def test_cache_memoises_lookups_and_revocation_lands_within_ttl(store, clock):
    alice = store.create_user(ACCOUNT, "alice")
    key, secret = store.create_access_key(ACCOUNT, "alice")
    counting = CountingStore(store)
    cache = CredentialCache(counting, ttl=5.0, clock=clock)  # type: ignore[arg-type]
    for _ in range(100):
        assert await cache.lookup(key.id) == (alice, secret)
    assert counting.key_lookups == 1
    store.delete_access_key(ACCOUNT, "alice", key.id)
    clock.advance(4.9)
    assert await cache.lookup(key.id) == (alice, secret)  # still cached: within ttl
    clock.advance(0.2)
    assert await cache.lookup(key.id) is None
    assert counting.key_lookups == 2


async def test_cache_remembers_unknown_keys_too(store, clock):
    counting = CountingStore(store)
    cache = CredentialCache(counting, ttl=5.0, clock=clock)  # type: ignore[arg-type]
    for _ in range(10):
        assert await cache.lookup("AKIAAAAAAAAAAAAAAAAA") is None
    assert counting.key_lookups == 1


async def test_cache_is_bounded(store, clock):
    cache = CredentialCache(store, ttl=5.0, maxsize=3, clock=clock)
    for i in range(10):
        await cache.lookup(f"AKIA{i:016d}")
    assert len(cache._keys._entries) == 3


async def test_cache_memoises_policies(store, clock):
    alice = store.create_user(ACCOUNT, "alice")
    store.put_user_policy(ACCOUNT, "alice", "pull", PULL_POLICY)
    counting = CountingStore(store)
    cache = CredentialCache(counting, ttl=5.0, clock=clock)  # type: ignore[arg-type]
    assert await cache.policies_for(alice) == [("pull", PULL_POLICY)]
    store.put_user_policy(ACCOUNT, "alice", "push", PUSH_POLICY)
    assert await cache.policies_for(alice) == [("pull", PULL_POLICY)]
    clock.advance(5.0)
    assert [n for n, _ in await cache.policies_for(alice)] == ["pull", "push"]
    assert counting.policy_lookups == 2
    cache.invalidate()
    await cache.policies_for(alice)
    assert counting.policy_lookups == 3


async def test_cache_async_lookups(store):
    alice = store.create_user(ACCOUNT, "alice")
    key, secret = store.create_access_key(ACCOUNT, "alice")
    store.put_user_policy(ACCOUNT, "alice", "pull", PULL_POLICY)
    cache = CredentialCache(store, ttl=5.0, clock=Clock())
    assert await cache.lookup(key.id) == (alice, secret)
    assert await cache.lookup(key.id) == (alice, secret)
    assert await cache.lookup("AKIAAAAAAAAAAAAAAAAA") is None
    assert await cache.policies_for(alice) == [("pull", PULL_POLICY)]


def test_records_are_plain_frozen_values():
    key = AccessKey(id="AKIAAAAAAAAAAAAAAAAA", user_name="a", account=ACCOUNT, status="Active",
                    created_at=0.0)
    assert key == AccessKey(**{f: getattr(key, f) for f in key.__slots__})
