"""The DB artifact: building it, installing it atomically, refusing corrupt ones."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from scanner import (InvalidDatabase, build_db_artifact, db_artifact_manifest, install_db,
                     read_db_metadata)
from scanner.trivydb import CONFIG_MEDIA_TYPE, LAYER_MEDIA_TYPE, check_bolt_file
from tests.scanner import fixtures
from tests.support.trivydb import write_trivy_db

LATER = datetime(2026, 12, 24, 12, 30, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return write_trivy_db(tmp_path_factory.mktemp("src"), fixtures.buckets(),
                          updated_at=fixtures.UPDATED_AT)


@pytest.fixture(scope="module")
def layer(source) -> bytes:
    return build_db_artifact(source)[1]


def test_the_artifact_is_trivys_config_and_one_tar_gz_layer(source, layer):
    config, same_layer = build_db_artifact(source)
    assert config == b"{}"
    assert same_layer == layer  # reproducible: no timestamps in tar or gzip headers
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == ["metadata.json", "trivy.db"]
        assert tar.extractfile("trivy.db").read() == (source / "trivy.db").read_bytes()
    manifest = json.loads(db_artifact_manifest(config, layer))
    assert manifest["config"]["mediaType"] == CONFIG_MEDIA_TYPE
    [descriptor] = manifest["layers"]
    assert descriptor["mediaType"] == LAYER_MEDIA_TYPE
    assert descriptor["size"] == len(layer)
    # Trivy's downloader names the file after this annotation and refuses a layer without it.
    assert descriptor["annotations"] == {"org.opencontainers.image.title": "db.tar.gz"}


def test_install_returns_updated_at_and_links_db_to_a_complete_version(tmp_path, layer):
    cache = tmp_path / "cache"
    assert read_db_metadata(cache) is None
    assert install_db(layer, cache) == fixtures.UPDATED_AT
    metadata = read_db_metadata(cache)
    assert (metadata.version, metadata.updated_at) == (2, fixtures.UPDATED_AT)
    assert metadata.next_update.year == 2999
    assert (cache / "db").is_symlink()
    check_bolt_file(cache / "db" / "trivy.db")
    assert not list(cache.glob("db.tmp-*"))


def test_a_new_db_replaces_the_old_and_one_previous_version_is_kept(tmp_path, layer):
    cache = tmp_path / "cache"
    install_db(layer, cache)
    first = (cache / "db").resolve()
    newer = build_db_artifact(write_trivy_db(tmp_path / "newer", fixtures.buckets(),
                                             updated_at=LATER))[1]
    assert install_db(newer, cache) == LATER
    second = (cache / "db").resolve()
    assert second != first and first.is_dir()  # a scan that resolved the old link still works
    assert read_db_metadata(cache).updated_at == LATER
    install_db(layer, cache)
    assert not first.exists() and second.is_dir()
    assert len([p for p in cache.glob("db.*") if p.is_dir()]) == 2


def test_a_db_trivy_downloaded_itself_is_adopted(tmp_path, layer, source):
    cache = tmp_path / "cache"
    (cache / "db").mkdir(parents=True)
    for name in ("trivy.db", "metadata.json"):
        (cache / "db" / name).write_bytes((source / name).read_bytes())
    newer = build_db_artifact(write_trivy_db(tmp_path / "newer", fixtures.buckets(),
                                             updated_at=LATER))[1]
    assert install_db(newer, cache) == LATER
    assert (cache / "db").is_symlink()


def _tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for info, data in members:
            info.size = len(data) if data is not None else 0
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return raw.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


def _corrupt(source: Path) -> dict[str, bytes]:
    db = (source / "trivy.db").read_bytes()
    meta = (source / "metadata.json").read_bytes()
    zero_checksum = bytearray(db)
    for page in (0, 1):  # what boltdb 0.0.2 writes before the §5.2 fix
        zero_checksum[page * 4096 + 16 + 56:page * 4096 + 16 + 64] = bytes(8)
    good = [_file("trivy.db", db), _file("metadata.json", meta)]
    return {
        "not gzip": b"PK\x03\x04 definitely a zip",
        "gzip but not tar": gzip.compress(b"plain text " * 100),
        "truncated": _tar_gz(good)[:-200],
        "no metadata.json": _tar_gz(good[:1]),
        "no trivy.db": _tar_gz(good[1:]),
        "schema version 1": _tar_gz([good[0], _file("metadata.json", json.dumps(
            {"Version": 1, "UpdatedAt": "2026-11-01T00:00:00Z"}).encode())]),
        "no UpdatedAt": _tar_gz([good[0], _file("metadata.json", b'{"Version": 2}')]),
        "metadata not JSON": _tar_gz([good[0], _file("metadata.json", b"{")]),
        "trivy.db not BoltDB": _tar_gz([_file("trivy.db", b"SQLite format 3\0" * 512),
                                        good[1]]),
        "meta checksum zero": _tar_gz([_file("trivy.db", bytes(zero_checksum)), good[1]]),
        "path with ..": _tar_gz([*good, _file("../escape", b"x")]),
        "absolute path": _tar_gz([*good, _file("/etc/escape", b"x")]),
        "symlink member": _tar_gz([_link("trivy.db", "/etc/passwd"), good[1]]),
        "trivy.db twice": _tar_gz([*good, _file("./trivy.db", db)]),
    }


@pytest.mark.parametrize("case", [
    "not gzip", "gzip but not tar", "truncated", "no metadata.json", "no trivy.db",
    "schema version 1", "no UpdatedAt", "metadata not JSON", "trivy.db not BoltDB",
    "meta checksum zero", "path with ..", "absolute path", "symlink member", "trivy.db twice"])
def test_a_corrupt_artifact_is_refused_and_the_previous_db_stays(tmp_path, source, layer,
                                                                 case):
    cache = tmp_path / "cache"
    install_db(layer, cache)
    before = (cache / "db").resolve()
    with pytest.raises(InvalidDatabase):
        install_db(_corrupt(source)[case], cache)
    assert (cache / "db").resolve() == before
    assert read_db_metadata(cache).updated_at == fixtures.UPDATED_AT
    assert (cache / "db" / "trivy.db").read_bytes() == (source / "trivy.db").read_bytes()
    assert not list(cache.glob("db.tmp-*"))
    assert not (tmp_path / "escape").exists()


def test_build_refuses_a_directory_without_a_valid_db(tmp_path, source):
    (tmp_path / "metadata.json").write_bytes((source / "metadata.json").read_bytes())
    (tmp_path / "trivy.db").write_bytes(b"\0" * 8192)
    with pytest.raises(InvalidDatabase):
        build_db_artifact(tmp_path)
    with pytest.raises(InvalidDatabase):
        build_db_artifact(tmp_path / "missing")


def test_an_installed_metadata_file_that_is_damaged_is_reported(tmp_path, layer):
    cache = tmp_path / "cache"
    install_db(layer, cache)
    (cache / "db" / "metadata.json").write_text("{")
    with pytest.raises(InvalidDatabase):
        read_db_metadata(cache)
