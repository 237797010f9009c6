"""`berth scanner update-db --from` takes a registry reference or a local db.tar.gz path."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from registry.cli import main
from registry.config import DEFAULT_ACCOUNT
from registry.metadata.store import SQLiteMetadataStore
from scanner.trivydb import build_db_artifact
from tests.scanner import fixtures
from tests.support.trivydb import write_trivy_db


@pytest.fixture(scope="module")
def db_tar_gz(tmp_path_factory):
    work = tmp_path_factory.mktemp("db")
    source = write_trivy_db(work / "src", fixtures.buckets(), updated_at=fixtures.UPDATED_AT)
    path = work / "db.tar.gz"
    path.write_bytes(build_db_artifact(source)[1])
    return path


def update_db(capsys, data, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["scanner", "update-db", *argv, "--data", str(data)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def stored_tags(data) -> list[str]:
    store = SQLiteMetadataStore(data / "metadata.db")
    try:
        repo = await store.get_repository(DEFAULT_ACCOUNT, "aquasec/trivy-db")
        return [] if repo is None else await store.list_tags(repo.id, last=None, limit=None)
    finally:
        await store.close()


def test_from_a_local_path_loads_like_file(tmp_path, capsys, db_tar_gz):
    code, out, err = update_db(capsys, tmp_path / "a", "--from", str(db_tar_gz))
    assert code == 0, err
    from_path = json.loads(out)
    code, out, err = update_db(capsys, tmp_path / "b", "--file", str(db_tar_gz))
    assert code == 0, err
    assert from_path == json.loads(out)  # the same artifact, byte for byte
    assert from_path["reference"] == "aquasec/trivy-db:2"
    assert asyncio.run(stored_tags(tmp_path / "a")) == ["2"]


def test_from_a_relative_path(tmp_path, capsys, db_tar_gz, monkeypatch):
    monkeypatch.chdir(db_tar_gz.parent)
    code, out, err = update_db(capsys, tmp_path / "data", "--from", "db.tar.gz")
    assert code == 0, err
    assert json.loads(out)["manifestDigest"].startswith("sha256:")


@pytest.mark.parametrize("source", ["./missing.tar.gz", "/nowhere/db.tar.gz", "~/no-db.tgz",
                                    "missing-db.tar.gz"])
def test_a_missing_file_is_named_not_fetched(tmp_path, capsys, source):
    code, out, err = update_db(capsys, tmp_path / "data", "--from", source)
    assert code == 1 and out == ""
    assert err == (f"berth: cannot load the vulnerability database: {source}: no such file "
                   "(--from takes a registry reference or a db.tar.gz path)\n")


def test_a_reference_that_is_not_a_file_is_still_a_reference(tmp_path, capsys):
    code, _, err = update_db(capsys, tmp_path / "data", "--from", "not a reference")
    assert code == 1
    assert "not a registry reference: 'not a reference'" in err
