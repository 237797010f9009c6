"""The data directory is 0700 and every directory in it 0700, every file 0600, whatever the
umask `berth serve` and the `berth` commands were started with (issue 8 §6).

A real server (one worker, and two: the Prometheus multiprocess files under run/) is started
with umask 022 and 000, an image is pushed with boto3, an upload is left open, the `berth`
commands that open the data directory run; then the whole tree is walked.
"""

from __future__ import annotations

import asyncio
import configparser
import os
import stat
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.config import Config as BotoConfig

from tests.support.metadata import cli_env
from tests.ecr.test_images import push_image
from tests.support.server import REPO_ROOT, BerthServer


def modes_that_are_not_private(root: Path) -> list[str]:
    """Every entry under ``root`` (and ``root``) that is not a 0700 directory or 0600 file.

    The one exception: a symlink to a place inside ``root`` (the Trivy DB's ``db`` links,
    once a DB is installed). A symlink has no mode of its own; its target is checked.
    """
    offenders = []
    for path in [root, *sorted(root.rglob("*"))]:
        info = path.lstat()
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISDIR(info.st_mode):
            ok = mode == 0o700
        elif stat.S_ISREG(info.st_mode):
            ok = mode == 0o600
        elif stat.S_ISLNK(info.st_mode):
            ok = path.resolve().is_relative_to(root.resolve())
        else:  # sockets, fifos, devices: nothing of the kind belongs here
            ok = False
        if not ok:
            offenders.append(f"{path.relative_to(root.parent)} {stat.filemode(info.st_mode)}")
    return offenders


def admin_client(data_dir: Path, url: str):
    parser = configparser.ConfigParser()
    parser.read(data_dir / "credentials")
    section = parser["default"]
    return boto3.client("ecr", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=section["aws_access_key_id"],
                        aws_secret_access_key=section["aws_secret_access_key"],
                        config=BotoConfig(retries={"max_attempts": 1}))


def berth(umask: int, data_dir: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "registry", *argv, "--data", str(data_dir)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                          umask=umask, check=True, env=cli_env(data_dir))


@pytest.mark.parametrize("umask,workers,fresh", [
    (0o022, 1, False),  # the data dir exists already, 0755: the server closes it
    (0o000, 2, True),   # nothing exists: created 0700; two workers share run/
])
def test_every_file_in_the_data_dir_is_private(tmp_path, umask, workers, fresh):
    workdir = tmp_path / "server"
    data_dir = tmp_path / "fresh" / "data" if fresh else workdir / "data"
    extra = ["--data", str(data_dir)] if fresh else []
    previous = os.umask(umask)  # the server process inherits it, as from an operator's shell
    try:
        server = BerthServer(workdir, workers=workers, extra_args=extra)
        if not fresh:
            os.chmod(server.data_dir, 0o755)
        server.start()
    finally:
        os.umask(previous)
    try:
        ecr = admin_client(data_dir, server.url)
        ecr.create_repository(repositoryName="modes/app")
        push_image(ecr, "modes/app", "v1", f"modes-{umask}")
        open_upload = ecr.initiate_layer_upload(repositoryName="modes/app")["uploadId"]
        ecr.upload_layer_part(repositoryName="modes/app", uploadId=open_upload,
                              partFirstByte=0, partLastByte=9, layerPartBlob=b"0123456789")
        berth(umask, data_dir, "iam", "create-user", "--user-name", "ci")
        berth(umask, data_dir, "iam", "create-access-key", "--user-name", "ci")
        berth(umask, data_dir, "gc", "--dry-run")
        berth(umask, data_dir, "webhooks", "deliveries")
        stored = {p.name for p in data_dir.iterdir()}
        expected = {"master.key", "credentials", "blobs", "uploads"}
        if "BERTH_METADATA__URL" not in server.env:  # SQLite lives in the data dir
            expected |= {"metadata.db", "metadata.db-wal", "metadata.db-shm"}
        else:
            assert not stored & {"metadata.db", "metadata.db-wal", "metadata.db-shm"}
        assert expected <= stored, stored
        if workers > 1:
            assert any((data_dir / "run").rglob("*.db")), "no Prometheus multiprocess files"
        assert modes_that_are_not_private(data_dir) == []
    finally:
        server.stop()
    assert modes_that_are_not_private(data_dir) == []
    warned = "data directory was open to other users" in server.log()
    assert warned == (not fresh)


def test_an_in_process_app_makes_its_data_dir_private(tmp_path):
    from registry.app import create_app
    from registry.appkeys import METADATA
    from registry.config import load_config

    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)
    config = load_config(environ={}, overrides={"data_dir": str(data_dir)})
    app = create_app(config)
    try:
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((data_dir / "master.key").stat().st_mode) == 0o600
        for name in ("metadata.db", "metadata.db-wal", "metadata.db-shm"):
            assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name
    finally:
        asyncio.run(app[METADATA].close())
