"""The master key file and the secret box: 0600, refusal when exposed, races, AES-GCM binding."""

from __future__ import annotations

import multiprocessing
import os
import stat

import pytest

from registry.auth.keys import (
    MASTER_KEY_BYTES, MasterKeyError, SecretBox, SecretBoxError, derive_key,
    load_or_create_master_key, master_key_path,
)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# -- master key file ---------------------------------------------------------------------------

def test_first_use_creates_32_random_bytes_mode_0600(tmp_path):
    key = load_or_create_master_key(tmp_path / "data")
    path = master_key_path(tmp_path / "data")
    assert len(key) == MASTER_KEY_BYTES
    assert path.read_bytes() == key
    assert _mode(path) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]  # no temp file left


def test_later_use_returns_the_same_key(tmp_path):
    assert load_or_create_master_key(tmp_path) == load_or_create_master_key(tmp_path)


def test_two_data_dirs_get_different_keys(tmp_path):
    assert load_or_create_master_key(tmp_path / "a") != load_or_create_master_key(tmp_path / "b")


def test_created_0600_even_with_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        load_or_create_master_key(tmp_path)
    finally:
        os.umask(old)
    assert _mode(master_key_path(tmp_path)) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660])
def test_refuses_a_key_accessible_to_group_or_others(tmp_path, mode):
    load_or_create_master_key(tmp_path)
    master_key_path(tmp_path).chmod(mode)
    with pytest.raises(MasterKeyError, match=f"{mode:04o}"):
        load_or_create_master_key(tmp_path)


@pytest.mark.parametrize("size", [0, 16, 33])
def test_refuses_a_key_of_the_wrong_size(tmp_path, size):
    path = master_key_path(tmp_path)
    path.write_bytes(b"k" * size)
    path.chmod(0o600)
    with pytest.raises(MasterKeyError, match="exactly 32 bytes"):
        load_or_create_master_key(tmp_path)


def _race(data_dir, barrier, results) -> None:
    barrier.wait()
    results.put(load_or_create_master_key(data_dir))


def test_concurrent_creators_all_get_the_one_key(tmp_path):
    ctx = multiprocessing.get_context("fork")
    workers = 8
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(tmp_path, barrier, results)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    keys = [results.get(timeout=30) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    assert len(set(keys)) == 1
    assert master_key_path(tmp_path).read_bytes() == keys[0]
    assert [p.name for p in tmp_path.iterdir()] == ["master.key"]


# -- secret box --------------------------------------------------------------------------------

@pytest.fixture
def master() -> bytes:
    return bytes(range(32))


def test_round_trip(master):
    box = SecretBox(master)
    sealed = box.encrypt("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", key_id="AKIAAAAAAAAAAAAAAAAA")
    assert box.decrypt(sealed, key_id="AKIAAAAAAAAAAAAAAAAA") == \
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert b"wJalr" not in sealed


def test_a_fresh_nonce_every_time(master):
    box = SecretBox(master)
    assert box.encrypt("s", key_id="K") != box.encrypt("s", key_id="K")


def test_ciphertext_is_bound_to_its_access_key_id(master):
    box = SecretBox(master)
    sealed = box.encrypt("secret", key_id="AKIAAAAAAAAAAAAAAAAA")
    with pytest.raises(SecretBoxError, match="AKIABBBBBBBBBBBBBBBB"):
        box.decrypt(sealed, key_id="AKIABBBBBBBBBBBBBBBB")


@pytest.mark.parametrize("where", ["version", "master key id", "nonce", "ciphertext", "tag"])
def test_any_flipped_bit_is_detected(master, where):
    box = SecretBox(master)
    sealed = bytearray(box.encrypt("secret", key_id="K"))
    # v2: version (1) | master key id (8) | nonce (12) | ciphertext | tag (16)
    index = {"version": 0, "master key id": 3, "nonce": 12, "ciphertext": 23,
             "tag": len(sealed) - 1}[where]
    sealed[index] ^= 0x01
    with pytest.raises(SecretBoxError):
        box.decrypt(bytes(sealed), key_id="K")


def test_truncated_ciphertext_is_rejected(master):
    box = SecretBox(master)
    with pytest.raises(SecretBoxError):
        box.decrypt(box.encrypt("secret", key_id="K")[:20], key_id="K")


def test_another_master_key_cannot_decrypt(master):
    sealed = SecretBox(master).encrypt("secret", key_id="K")
    with pytest.raises(SecretBoxError):
        SecretBox(bytes(32)).decrypt(sealed, key_id="K")


def test_master_key_must_be_32_bytes():
    with pytest.raises(ValueError):
        SecretBox(b"short")


def test_derived_keys_are_deterministic_and_separate_per_purpose(master):
    token = derive_key(master, "registry-token")
    assert token == derive_key(master, "registry-token")
    assert len(token) == 32
    assert token != master
    assert token != derive_key(master, "access-key-secrets")
    assert token != derive_key(bytes(32), "registry-token")
    assert len(derive_key(master, "x", length=64)) == 64
    with pytest.raises(ValueError):
        derive_key(master, "")
