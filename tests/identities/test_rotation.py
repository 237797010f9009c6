"""``rotate_secrets`` (what ``berth keys rotate`` runs) on every backend: every secret another
key sealed ends under the current key, page by page; a second run changes nothing; what no
configured key opens is reported and left alone."""

from __future__ import annotations

import base64

import pytest

from registry.auth.identities import Identities
from registry.auth.keys import MasterKeys, SecretBox, master_key_id
from registry.auth.rotation import rotate_secrets
from registry.metadata.identities import NewAccessKey
from tests.identities.conftest import ACCOUNT
from tests.identities.test_master_keys import v1_sealed

OLD, NEW, STRANGER = bytes(range(32)), bytes(range(100, 132)), bytes(range(200, 232))


def sealed_by(metadata) -> dict[str, str | None]:
    box = SecretBox(NEW)
    return {key_id: box.sealed_by(base64.b64decode(sealed))
            for key_id, sealed in metadata.sealed_secrets(after="", limit=1000)}


@pytest.fixture
def before(metadata):
    """Five users with a key each under OLD, and one secret sealed before key ids (v1)."""
    old = Identities(metadata, SecretBox(OLD))
    secrets = {}
    for i in range(5):
        old.create_user(ACCOUNT, f"user{i}")
        key, secret = old.create_access_key(ACCOUNT, f"user{i}")
        secrets[key.id] = secret
    legacy = "LegacySecretLegacySecretLegacySecret0000"
    metadata.create_access_key(ACCOUNT, "user0", NewAccessKey(
        id="AKIALEGACYVAAAAAAAAA", created_at=1.0,
        sealed_secret=base64.b64encode(v1_sealed(OLD, legacy, "AKIALEGACYVAAAAAAAAA")).decode()),
        limit=2)
    secrets["AKIALEGACYVAAAAAAAAA"] = legacy
    return secrets


async def test_every_secret_ends_sealed_by_the_current_key(metadata, before):
    progress = []
    report = rotate_secrets(metadata, SecretBox(MasterKeys(NEW, [OLD])), batch=2,
                            on_batch=lambda r: progress.append((r.examined, r.resealed)))
    assert report.summary() == {"master_key_id": master_key_id(NEW), "examined": 6,
                                "resealed": 6, "already_current": 0, "changed_meanwhile": 0,
                                "unreadable": []}
    assert progress == [(2, 2), (4, 4), (6, 6), (6, 6)]  # the last page is empty
    assert set(sealed_by(metadata).values()) == {master_key_id(NEW)}
    # The old key is no longer needed: every secret opens under the new one alone.
    after = Identities(metadata, SecretBox(NEW))
    for key_id, secret in before.items():
        assert (await after.lookup_access_key(key_id))[1] == secret


async def test_a_second_run_changes_nothing(metadata, before):
    rotating = SecretBox(MasterKeys(NEW, [OLD]))
    rotate_secrets(metadata, rotating)
    stored = metadata.sealed_secrets(after="", limit=1000)
    again = rotate_secrets(metadata, rotating, batch=4)
    assert (again.examined, again.resealed, again.current) == (6, 0, 6)
    assert metadata.sealed_secrets(after="", limit=1000) == stored


async def test_secrets_no_configured_key_opens_are_reported_and_left_alone(metadata, before):
    stranger = Identities(metadata, SecretBox(STRANGER))
    stranger.create_user(ACCOUNT, "stranger")
    key, _ = stranger.create_access_key(ACCOUNT, "stranger")
    untouched = dict(metadata.sealed_secrets(after="", limit=1000))[key.id]
    report = rotate_secrets(metadata, SecretBox(MasterKeys(NEW, [OLD])), batch=3)
    assert report.unreadable == [key.id]
    assert (report.examined, report.resealed) == (7, 6)
    assert dict(metadata.sealed_secrets(after="", limit=1000))[key.id] == untouched
    assert sealed_by(metadata)[key.id] == master_key_id(STRANGER)


async def test_an_empty_store_and_a_bad_batch(metadata):
    report = rotate_secrets(metadata, SecretBox(NEW))
    assert (report.examined, report.resealed) == (0, 0)
    with pytest.raises(ValueError):
        rotate_secrets(metadata, SecretBox(NEW), batch=0)
