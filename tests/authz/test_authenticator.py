"""The /v2/ authenticator on its own: a real identity store, hand-turned clocks, no server.

Pins what the end-to-end revocation tests cannot without waiting: the memo of verified
passwords never outlives the credential cache's window, and it is bounded.
"""

from __future__ import annotations

import base64
import time

import pytest
from aiohttp.test_utils import make_mocked_request

from registry.auth.authenticate import Authenticator
from registry.auth.credential_cache import CredentialCache, TTLMap
from registry.auth.identities import Identities
from registry.auth.keys import SecretBox, load_or_create_master_key
from registry.auth.tokens import TokenSigner
from registry.metadata.store import SQLiteMetadataStore
from registry.oci.errors import Unauthorized
from tests.identities.conftest import Clock

ACCOUNT = "000000000000"


@pytest.fixture
def world(tmp_path):
    metadata = SQLiteMetadataStore(tmp_path / "metadata.db")
    store = Identities(metadata, SecretBox(load_or_create_master_key(tmp_path)))
    user = store.create_user(ACCOUNT, "carol")
    key, _ = store.create_access_key(ACCOUNT, "carol")
    clock = Clock()
    credentials = CredentialCache(store, ttl=5.0, clock=clock)
    signer = TokenSigner(b"k" * 32, key_id="0123456789abcdef")
    authenticator = Authenticator(credentials=credentials, tokens=signer, region="us-east-1",
                                  clock=clock)
    password, _ = signer.issue(principal_arn=user.arn, account=ACCOUNT, user_id=user.id,
                               access_key_id=key.id, now=time.time())
    yield store, key, clock, authenticator, password
    metadata.db.close_sync()


def request_with(password: str, *, scheme: str = "basic", host: str = "registry.test:5000"):
    value = (f"Bearer {password}" if scheme == "bearer" else
             "Basic " + base64.b64encode(f"AWS:{password}".encode()).decode())
    return make_mocked_request("GET", "/v2/", headers={"Authorization": value, "Host": host})


async def test_a_deactivated_key_ends_its_token_once_the_cache_window_passes(world):
    store, key, clock, authenticator, password = world
    principal = await authenticator.registry(request_with(password))
    assert principal.name == "carol" and principal.access_key_id == key.id
    store.update_access_key(ACCOUNT, "carol", key.id, "Inactive")
    clock.advance(4.9)  # inside the window: the cached key still counts (documented trade)
    assert await authenticator.registry(request_with(password)) == principal
    clock.advance(0.2)
    with pytest.raises(Unauthorized) as raised:
        await authenticator.registry(request_with(password))
    assert "no longer valid" in raised.value.message
    assert "--password-stdin registry.test:5000' again" in raised.value.message


async def test_a_deleted_user_ends_its_token_even_while_the_password_is_memoised(world):
    store, _, clock, authenticator, password = world
    await authenticator.registry(request_with(password, scheme="bearer"))
    store.delete_user(ACCOUNT, "carol", force=True)
    clock.advance(5.1)
    with pytest.raises(Unauthorized):
        await authenticator.registry(request_with(password))


async def test_a_key_given_to_another_user_id_does_not_carry_the_token(world):
    """The token names a user id as well as a key; both must still match."""
    store, key, clock, authenticator, _ = world
    signer = authenticator.tokens
    forged_owner, _ = signer.issue(principal_arn="arn:aws:iam::000000000000:user/mallory",
                                   account=ACCOUNT, user_id="AIDAMALLORYMALLORYMA",
                                   access_key_id=key.id, now=time.time())
    with pytest.raises(Unauthorized):
        await authenticator.registry(request_with(forged_owner))


async def test_expired_token_says_how_to_log_in_again(world):
    store, key, clock, authenticator, _ = world
    user = store.get_user(ACCOUNT, "carol")
    old, _ = authenticator.tokens.issue(principal_arn=user.arn, account=ACCOUNT,
                                        user_id=user.id, access_key_id=key.id,
                                        now=time.time() - 13 * 3600)
    with pytest.raises(Unauthorized) as raised:
        await authenticator.registry(request_with(old, host="10.1.2.3:5000"))
    assert raised.value.message == (
        "authorization token has expired: run 'aws ecr get-login-password | docker login "
        "--username AWS --password-stdin 10.1.2.3:5000' again")
    assert raised.value.headers["WWW-Authenticate"] == \
        'Basic realm="http://10.1.2.3:5000/",service="ecr.amazonaws.com"'


def test_challenge_realm_never_carries_characters_outside_a_host(world):
    *_, authenticator, _ = world
    request = make_mocked_request("GET", "/v2/", headers={"Host": 'evil",x="1'})
    header = authenticator.challenge(request).headers["WWW-Authenticate"]
    assert header.count('"') == 4 and header.startswith('Basic realm="http://evilx1/"')


def test_the_memo_is_bounded_and_evicts_the_oldest_entry_only():
    clock = Clock()
    memo = TTLMap(5.0, 3, clock)
    for n in range(4):
        memo.put(n, n)
    assert len(memo) == 3
    assert memo.get(0) == (False, None)
    assert [memo.get(n) for n in (1, 2, 3)] == [(True, 1), (True, 2), (True, 3)]
    clock.advance(5.0)
    assert memo.get(3) == (False, None)
