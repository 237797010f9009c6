"""Master keys named in config (``[keys]``): strict key files, key ids, the keys a rotation
holds, and secrets sealed under one key and opened under the set (formats v1 and v2)."""

from __future__ import annotations

import base64
import os
import re
import secrets
import stat

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from registry.auth.keys import (
    MasterKeyError, MasterKeys, SecretBox, SecretBoxError, derive_key, generate_key_file,
    load_master_keys, master_key_id, master_key_path, read_key_file, token_signer,
)
from registry.config import load_config

OLD, NEW, OTHER = bytes(range(32)), bytes(range(100, 132)), bytes(range(200, 232))
ACCESS_KEY = "AKIAAAAAAAAAAAAAAAAA"


def key_file(path, content: bytes = NEW, mode: int = 0o600):
    path.write_bytes(content)
    path.chmod(mode)
    return path


def config(tmp_path, **keys):
    overrides = {"data_dir": str(tmp_path / "data")}
    overrides.update({f"keys.{name}": value for name, value in keys.items()})
    return load_config(None, environ={}, overrides=overrides)


# -- key files ---------------------------------------------------------------------------------

@pytest.mark.parametrize("content,found", [
    (b"", 0), (b"k" * 31, 31), (NEW + b"\n", 33),
    (base64.b64encode(NEW), 44), (base64.b64encode(NEW) + b"\n", 45), (NEW * 2, 64)])
def test_a_key_file_is_exactly_32_raw_bytes(tmp_path, content, found):
    path = key_file(tmp_path / "key", content)
    with pytest.raises(MasterKeyError, match=rf"exactly 32 bytes \(raw.*found {found}$"):
        read_key_file(path)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o666])
def test_a_key_file_open_to_group_or_others_is_refused(tmp_path, mode):
    path = key_file(tmp_path / "key", mode=mode)
    with pytest.raises(MasterKeyError, match=f"accessible to group or others.*{mode:04o}"):
        read_key_file(path)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_owner_only_modes_are_accepted(tmp_path, mode):
    assert read_key_file(key_file(tmp_path / "key", mode=mode)) == NEW


def test_a_missing_key_file_says_how_to_make_one(tmp_path):
    with pytest.raises(MasterKeyError, match=r"missing: cannot open master key: No such file.*"
                                             r"berth keys generate PATH"):
        read_key_file(tmp_path / "missing")


def test_a_directory_is_not_a_key_file(tmp_path):
    directory = tmp_path / "dir"
    directory.mkdir(mode=0o700)
    with pytest.raises(MasterKeyError, match="not a regular file"):
        read_key_file(directory)


def test_generate_writes_32_random_bytes_0600_and_never_overwrites(tmp_path):
    path = tmp_path / "new.key"
    old_umask = os.umask(0)
    try:
        key = generate_key_file(path)
    finally:
        os.umask(old_umask)
    assert path.read_bytes() == key and len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert generate_key_file(tmp_path / "other.key") != key
    with pytest.raises(MasterKeyError, match="exists; refusing to overwrite"):
        generate_key_file(path)
    assert path.read_bytes() == key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.key", "other.key"]


def test_generate_into_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(MasterKeyError, match="cannot write a key file: No such file"):
        generate_key_file(tmp_path / "absent" / "key")


# -- key ids -----------------------------------------------------------------------------------

def test_a_key_id_is_16_hex_digits_derived_from_the_key_alone():
    assert re.fullmatch(r"[0-9a-f]{16}", master_key_id(NEW))
    assert master_key_id(NEW) == master_key_id(bytes(NEW))
    assert len({master_key_id(OLD), master_key_id(NEW), master_key_id(OTHER)}) == 3
    # Not a piece of the key or of anything derived from it for another purpose.
    for material in (NEW, derive_key(NEW, "access-key-secrets"), derive_key(NEW, "registry-token")):
        assert master_key_id(NEW) not in material.hex()


def test_master_keys_list_the_current_key_first_and_count_duplicates_once():
    keys = MasterKeys(NEW, [OLD, NEW, OLD, OTHER])
    assert keys.current_id == master_key_id(NEW)
    assert keys.ids() == (master_key_id(NEW), master_key_id(OLD), master_key_id(OTHER))
    assert list(keys.derived("registry-token")) == list(keys.ids())
    assert NEW.hex() not in repr(keys) and OLD.hex() not in repr(keys)
    with pytest.raises(ValueError):
        MasterKeys(NEW, [b"short"])


# -- the keys a config names -------------------------------------------------------------------

def test_by_default_the_data_directory_key_is_created_and_used(tmp_path):
    keys = load_master_keys(config(tmp_path))
    assert keys.current == master_key_path(tmp_path / "data").read_bytes()
    assert keys.previous == ()
    assert load_master_keys(config(tmp_path)).current == keys.current


def test_without_create_a_missing_data_directory_key_is_an_error(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(MasterKeyError, match="master.key: no master key yet"):
        load_master_keys(config(tmp_path), create=False)
    assert not master_key_path(tmp_path / "data").exists()


def test_a_named_key_file_is_used_and_no_data_directory_key_is_made(tmp_path):
    path = key_file(tmp_path / "shared.key")
    old = key_file(tmp_path / "old.key", OLD)
    keys = load_master_keys(config(tmp_path, key_file=str(path), previous_key_files=[str(old)]))
    assert (keys.current, keys.previous) == (NEW, (OLD,))
    assert not master_key_path(tmp_path / "data").exists()


@pytest.mark.parametrize("which", ["key_file", "previous_key_files"])
def test_a_named_key_file_that_is_missing_or_exposed_stops_loading(tmp_path, which):
    good = key_file(tmp_path / "good.key")
    exposed = key_file(tmp_path / "exposed.key", OLD, mode=0o644)
    for bad, message in ((tmp_path / "missing.key", "No such file"),
                         (exposed, "accessible to group or others")):
        keys = {"key_file": str(bad)} if which == "key_file" else \
            {"key_file": str(good), "previous_key_files": [str(bad)]}
        with pytest.raises(MasterKeyError, match=message):
            load_master_keys(config(tmp_path, **keys))
    assert not master_key_path(tmp_path / "data").exists()


def test_the_token_signer_signs_with_the_current_key_and_verifies_with_all(tmp_path):
    old_signer = token_signer(MasterKeys(OLD))
    token, _ = old_signer.issue(principal_arn="arn:aws:iam::000000000000:user/a",
                                account="000000000000", user_id="AIDA", access_key_id="AKIA",
                                now=1000)
    assert token.split(".")[1] == master_key_id(OLD)
    rotating = token_signer(MasterKeys(NEW, [OLD]))
    assert rotating.verify(token, now=1001).user_id == "AIDA"
    fresh, _ = rotating.issue(principal_arn="arn:aws:iam::000000000000:user/a",
                              account="000000000000", user_id="AIDA", access_key_id="AKIA",
                              now=1000)
    assert fresh.split(".")[1] == master_key_id(NEW)


# -- sealed secrets under several keys -------------------------------------------------------

def v1_sealed(master: bytes, secret: str, access_key: str = ACCESS_KEY) -> bytes:
    """A secret as Berth sealed them before key ids (format v1)."""
    nonce = secrets.token_bytes(12)
    aead = AESGCM(derive_key(master, "access-key-secrets"))
    return b"\x01" + nonce + aead.encrypt(nonce, secret.encode(),
                                          b"berth-access-key:" + access_key.encode())


def test_a_secret_records_the_key_that_sealed_it():
    sealed = SecretBox(MasterKeys(NEW, [OLD])).encrypt("s3cret", key_id=ACCESS_KEY)
    assert sealed[:1] == b"\x02" and sealed[1:9].hex() == master_key_id(NEW)
    assert SecretBox(NEW).sealed_by(sealed) == master_key_id(NEW)
    assert SecretBox(NEW).sealed_by(v1_sealed(OLD, "x")) is None


def test_secrets_sealed_by_a_previous_key_open_while_it_is_configured():
    by_old = SecretBox(OLD).encrypt("s3cret", key_id=ACCESS_KEY)
    assert SecretBox(MasterKeys(NEW, [OLD])).decrypt(by_old, key_id=ACCESS_KEY) == "s3cret"
    with pytest.raises(SecretBoxError, match=f"sealed by master key {master_key_id(OLD)}, "
                                             r"which is not configured .*previous_key_files"):
        SecretBox(MasterKeys(NEW, [OTHER])).decrypt(by_old, key_id=ACCESS_KEY)


def test_v1_secrets_open_under_whichever_configured_key_sealed_them():
    legacy = v1_sealed(OLD, "s3cret")
    assert SecretBox(OLD).decrypt(legacy, key_id=ACCESS_KEY) == "s3cret"
    assert SecretBox(MasterKeys(NEW, [OTHER, OLD])).decrypt(legacy, key_id=ACCESS_KEY) == "s3cret"
    with pytest.raises(SecretBoxError, match="does not decrypt"):
        SecretBox(MasterKeys(NEW, [OTHER])).decrypt(legacy, key_id=ACCESS_KEY)
    with pytest.raises(SecretBoxError):
        SecretBox(OLD).decrypt(legacy, key_id="AKIABBBBBBBBBBBBBBBB")


def test_a_secret_relabelled_with_another_configured_key_id_does_not_open():
    by_old = bytearray(SecretBox(OLD).encrypt("s3cret", key_id=ACCESS_KEY))
    by_old[1:9] = bytes.fromhex(master_key_id(NEW))
    with pytest.raises(SecretBoxError, match="does not decrypt"):
        SecretBox(MasterKeys(NEW, [OLD])).decrypt(bytes(by_old), key_id=ACCESS_KEY)


def test_reseal_moves_a_secret_to_the_current_key_and_leaves_current_ones_alone():
    rotating = SecretBox(MasterKeys(NEW, [OLD]))
    for stored in (SecretBox(OLD).seal("s3cret", key_id=ACCESS_KEY),
                   base64.b64encode(v1_sealed(OLD, "s3cret")).decode()):
        resealed = rotating.reseal(stored, key_id=ACCESS_KEY)
        assert resealed is not None and resealed != stored
        assert rotating.sealed_by(base64.b64decode(resealed)) == master_key_id(NEW)
        assert SecretBox(NEW).open(resealed, key_id=ACCESS_KEY) == "s3cret"
        assert rotating.reseal(resealed, key_id=ACCESS_KEY) is None
    with pytest.raises(SecretBoxError):
        rotating.reseal(SecretBox(OTHER).seal("x", key_id=ACCESS_KEY), key_id=ACCESS_KEY)


@pytest.mark.parametrize("stored", ["not base64!", "", base64.b64encode(b"\x02short").decode(),
                                    base64.b64encode(b"\x07" + bytes(60)).decode()])
def test_stored_text_that_is_no_sealed_secret_is_refused(stored):
    box = SecretBox(NEW)
    with pytest.raises(SecretBoxError, match=ACCESS_KEY):
        box.open(stored, key_id=ACCESS_KEY)
    with pytest.raises(SecretBoxError, match=ACCESS_KEY):
        box.reseal(stored, key_id=ACCESS_KEY)
