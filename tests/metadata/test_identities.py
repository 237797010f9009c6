"""IdentityStore contract, on every backend: accounts, users, keys and policies; the
check-then-write rules under races between two stores (two nodes); the first start exactly
once; secrets stored only sealed."""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import pytest
import sqlalchemy as sa

from registry.auth.identities import Identities
from registry.auth.keys import SecretBox
from registry.metadata import tables as t
from registry.metadata.database import query
from registry.metadata.identities import (
    AccessKey, AccessKeyLimitError, NewAccessKey, NoSuchAccessKeyError, NoSuchUserError,
    NoSuchUserPolicyError, User, UserExistsError, UserInUseError,
)

ACCOUNT, OTHER = "000000000000", "111122223333"
POLICY = '{"Version": "2012-10-17", "Statement": []}'


def user(name: str, account: str = ACCOUNT, at: float = 1_700_000_000.25) -> User:
    return User(id=f"AIDA{name.upper():A<17}"[:21], account=account, name=name,
                arn=f"arn:aws:iam::{account}:user/{name}", created_at=at)


def key(key_id: str, at: float = 1_700_000_001.5) -> NewAccessKey:
    return NewAccessKey(id=key_id, sealed_secret=f"sealed-{key_id}", created_at=at)


def race(n: int, fn: Callable[[int], object]) -> list[object]:
    """Run ``fn(0..n-1)`` on n threads released at once; each outcome or raised error."""
    barrier = threading.Barrier(n)

    def run(i: int) -> object:
        barrier.wait()
        try:
            return fn(i)
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            return exc

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


# -- CRUD -------------------------------------------------------------------------------------

async def test_users_round_trip(store):
    alice = store.create_user(user("alice"))
    assert alice == user("alice")  # timestamps survive at the database's precision
    store.create_user(user("bob", OTHER))
    assert store.get_user(ACCOUNT, "alice") == alice
    assert store.get_user(ACCOUNT, "ghost") is None
    assert store.list_accounts() == [ACCOUNT, OTHER]
    assert [u.name for u in store.list_users(None)] == ["alice", "bob"]
    assert [u.name for u in store.list_users(OTHER)] == ["bob"]
    with pytest.raises(UserExistsError):
        store.create_user(user("alice"))
    store.ensure_account("999999999999", now=1.0)
    store.ensure_account("999999999999", now=2.0)
    assert store.list_accounts() == [ACCOUNT, OTHER, "999999999999"]


async def test_keys_round_trip(store):
    alice = store.create_user(user("alice"))
    first = store.create_access_key(ACCOUNT, "alice", key("AKIAFIRST"), limit=2)
    assert (first.id, first.user_name, first.status) == ("AKIAFIRST", "alice", "Active")
    assert first.created_at == 1_700_000_001.5
    store.create_access_key(ACCOUNT, "alice", key("AKIASECOND", 1_700_000_002.0), limit=2)
    assert [k.id for k in store.list_access_keys(ACCOUNT, "alice")] == ["AKIAFIRST",
                                                                         "AKIASECOND"]
    assert await store.lookup_access_key("AKIAFIRST") == (alice, "sealed-AKIAFIRST")
    store.set_access_key_status(ACCOUNT, "alice", "AKIAFIRST", "Inactive")
    assert await store.lookup_access_key("AKIAFIRST") is None
    assert store.list_access_keys(ACCOUNT, "alice")[0].status == "Inactive"
    store.delete_access_key(ACCOUNT, "alice", "AKIAFIRST")
    assert [k.id for k in store.list_access_keys(ACCOUNT, "alice")] == ["AKIASECOND"]
    with pytest.raises(NoSuchAccessKeyError):
        store.delete_access_key(ACCOUNT, "alice", "AKIAFIRST")
    with pytest.raises(NoSuchUserError):
        store.create_access_key(ACCOUNT, "ghost", key("AKIAGHOST"), limit=2)
    with pytest.raises(NoSuchUserError):
        store.list_access_keys(ACCOUNT, "ghost")


async def test_policies_round_trip(store):
    alice = store.create_user(user("alice"))
    store.put_user_policy(ACCOUNT, "alice", "push", POLICY, now=1.0)
    store.put_user_policy(ACCOUNT, "alice", "pull", POLICY, now=1.0)
    store.put_user_policy(ACCOUNT, "alice", "pull", "{}", now=2.0)  # replaced
    assert store.list_user_policies(ACCOUNT, "alice") == ["pull", "push"]
    assert store.get_user_policy(ACCOUNT, "alice", "pull") == "{}"
    assert await store.user_policies(alice.id) == [("pull", "{}"), ("push", POLICY)]
    store.delete_user_policy(ACCOUNT, "alice", "pull")
    with pytest.raises(NoSuchUserPolicyError):
        store.get_user_policy(ACCOUNT, "alice", "pull")
    with pytest.raises(NoSuchUserPolicyError):
        store.delete_user_policy(ACCOUNT, "alice", "pull")
    with pytest.raises(NoSuchUserError):
        store.put_user_policy(ACCOUNT, "ghost", "pull", POLICY, now=1.0)


@pytest.mark.parametrize("has, refused", [("keys", "access keys"), ("policies", "policies")])
async def test_delete_user_refuses_while_it_has_keys_or_policies(store, has, refused):
    alice = store.create_user(user("alice"))
    if has == "keys":
        store.create_access_key(ACCOUNT, "alice", key("AKIAONE"), limit=2)
    else:
        store.put_user_policy(ACCOUNT, "alice", "pull", POLICY, now=1.0)
    with pytest.raises(UserInUseError) as raised:
        store.delete_user(ACCOUNT, "alice", force=False)
    assert raised.value.what == refused
    store.delete_user(ACCOUNT, "alice", force=True)
    assert store.get_user(ACCOUNT, "alice") is None
    assert await store.lookup_access_key("AKIAONE") is None
    assert await store.user_policies(alice.id) == []
    with pytest.raises(NoSuchUserError):
        store.delete_user(ACCOUNT, "alice", force=True)


# -- sealed secrets, page by page (berth keys rotate) ----------------------------------------

async def test_sealed_secrets_are_listed_page_by_page_every_key_once(store):
    store.create_user(user("alice"))
    store.create_user(user("bob", OTHER))
    ids = ["AKIAB2", "AKIAA1", "AKIAC3", "AKIAD4"]
    for i, key_id in enumerate(ids):
        owner, account = ("alice", ACCOUNT) if i < 2 else ("bob", OTHER)
        store.create_access_key(account, owner, key(key_id), limit=2)
    store.set_access_key_status(OTHER, "bob", "AKIAC3", "Inactive")  # inactive ones too
    everything = store.sealed_secrets(after="", limit=100)
    assert everything == [(k, f"sealed-{k}") for k in sorted(ids)]
    pages, after = [], ""
    while page := store.sealed_secrets(after=after, limit=3):
        pages.append([k for k, _ in page])
        after = page[-1][0]
    assert pages == [["AKIAA1", "AKIAB2", "AKIAC3"], ["AKIAD4"]]
    assert store.sealed_secrets(after="AKIAD4", limit=3) == []


async def test_replacing_sealed_secrets_is_a_compare_and_swap(store):
    store.create_user(user("alice"))
    for key_id in ("AKIAONE", "AKIATWO"):
        store.create_access_key(ACCOUNT, "alice", key(key_id), limit=2)
    assert store.replace_sealed_secrets([]) == 0
    replaced = store.replace_sealed_secrets([
        ("AKIAONE", "sealed-AKIAONE", "resealed-one"),  # as read: replaced
        ("AKIATWO", "stale", "resealed-two"),           # changed since it was read: kept
        ("AKIAGONE", "sealed-AKIAGONE", "resealed"),    # deleted meanwhile: nothing
    ])
    assert replaced == 1
    assert store.sealed_secrets(after="", limit=10) == [("AKIAONE", "resealed-one"),
                                                         ("AKIATWO", "sealed-AKIATWO")]
    assert (await store.lookup_access_key("AKIAONE"))[1] == "resealed-one"
    # Run again with the same expectations: nothing matches any more (idempotent).
    assert store.replace_sealed_secrets([("AKIAONE", "sealed-AKIAONE", "other")]) == 0
    assert store.list_access_keys(ACCOUNT, "alice")[0].status == "Active"


async def test_two_nodes_replacing_one_secret_at_once_replace_it_once(store, store_factory):
    store.create_user(user("alice"))
    store.create_access_key(ACCOUNT, "alice", key("AKIAONE"), limit=2)
    stores = [store, store_factory()]
    outcomes = race(2, lambda i: stores[i].replace_sealed_secrets(
        [("AKIAONE", "sealed-AKIAONE", f"resealed-by-{i}")]))
    assert sorted(outcomes) == [0, 1]
    winner = outcomes.index(1)
    assert store.sealed_secrets(after="", limit=1) == [("AKIAONE", f"resealed-by-{winner}")]


# -- races between two stores (two nodes) -----------------------------------------------------

async def test_two_nodes_creating_one_user_name_get_one_user(store, store_factory):
    stores = [store, store_factory()]
    for round_ in range(3):
        name = f"dup{round_}"
        outcomes = race(6, lambda i: stores[i % 2].create_user(
            User(id=f"AIDA{round_}{i}".ljust(21, "X"), account=ACCOUNT, name=name,
                 arn=f"arn:aws:iam::{ACCOUNT}:user/{name}", created_at=1.0)))
        assert sum(isinstance(o, User) for o in outcomes) == 1, outcomes
        assert sum(isinstance(o, UserExistsError) for o in outcomes) == 5, outcomes
    assert [u.name for u in store.list_users(ACCOUNT)] == ["dup0", "dup1", "dup2"]


async def test_the_key_limit_holds_under_concurrent_creates(store, store_factory):
    stores = [store, store_factory()]
    for round_ in range(3):
        name = f"user{round_}"
        store.create_user(user(name))
        outcomes = race(6, lambda i: stores[i % 2].create_access_key(
            ACCOUNT, name, key(f"AKIA{round_}{i}"), limit=2))
        assert sum(isinstance(o, AccessKeyLimitError) for o in outcomes) == 4, outcomes
        assert len(store.list_access_keys(ACCOUNT, name)) == 2


async def test_a_key_is_never_added_to_a_user_being_deleted(store, store_factory):
    other = store_factory()
    for round_ in range(3):
        name = f"gone{round_}"
        store.create_user(user(name))

        def act(i: int) -> object:
            if i == 0:
                return store.delete_user(ACCOUNT, name, force=True)
            return other.create_access_key(ACCOUNT, name, key(f"AKIAG{round_}{i}"), limit=5)

        outcomes = race(3, act)
        # Each create ran wholly before the delete (its key went with the user) or after
        # it (no such user): never a half-made key, never a constraint error.
        assert all(o is None or isinstance(o, (AccessKey, NoSuchUserError))
                   for o in outcomes), outcomes
        assert store.get_user(ACCOUNT, name) is None
        for i in (1, 2):
            assert await store.lookup_access_key(f"AKIAG{round_}{i}") is None


async def test_the_first_user_is_created_exactly_once_across_nodes(store, store_factory):
    stores = [store, store_factory()]
    written: list[str] = []
    accounts = [ACCOUNT, OTHER]  # even different accounts: the store is empty only once

    def first(i: int) -> object:
        name = f"admin{i}"
        return stores[i % 2].create_first_user(
            user(name, accounts[i % 2]), key(f"AKIAADMIN{i}"), policy_name="all",
            policy_document=POLICY, before_commit=lambda: written.append(name))

    outcomes = race(6, first)
    created = [o for o in outcomes if o is not None]
    assert len(created) == 1 and not any(isinstance(o, Exception) for o in outcomes), outcomes
    (admin, admin_key), = created
    assert written == [admin.name]
    assert store.list_accounts() == [admin.account]
    assert store.list_users(None) == [admin]
    assert store.list_access_keys(admin.account, admin.name) == [admin_key]
    assert store.list_user_policies(admin.account, admin.name) == ["all"]
    assert store.create_first_user(user("late"), key("AKIALATE"), policy_name="all",
                                   policy_document=POLICY, before_commit=lambda: None) is None


async def test_a_failing_first_start_leaves_nothing(store):
    def fail() -> None:
        raise OSError("credentials file not writable")

    with pytest.raises(OSError, match="not writable"):
        store.create_first_user(user("admin"), key("AKIAADMIN"), policy_name="all",
                                policy_document=POLICY, before_commit=fail)
    assert store.list_accounts() == [] and store.list_users(None) == []
    assert store.create_first_user(user("admin"), key("AKIAADMIN"), policy_name="all",
                                   policy_document=POLICY, before_commit=lambda: None)


# -- secrets at rest --------------------------------------------------------------------------

@query
def _stored_secret(d):
    return sa.select(t.access_keys.c.secret_ciphertext).where(
        t.access_keys.c.id == sa.bindparam("key"))


async def test_secrets_are_stored_sealed_and_open_only_with_the_master_key(store):
    identities = Identities(store, SecretBox(bytes(range(32))))
    identities.create_user(ACCOUNT, "alice")
    access_key, secret = identities.create_access_key(ACCOUNT, "alice")
    raw = await store.db.read(lambda c: c.scalar(_stored_secret, key=access_key.id))
    assert secret not in raw and secret.encode() not in base64.b64decode(raw)
    assert (await identities.lookup_access_key(access_key.id))[1] == secret
