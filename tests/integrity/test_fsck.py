"""`berth fsck`: finds corrupt and missing blobs, names what they break, and with --repair
quarantines corrupt files so that a client's next push restores them (issue 8)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

from tests.integrity.conftest import fsck, two_platform_index
from tests.support.images import Image, random_layer
from tests.support.oci_client import expect

ACCOUNT = "000000000000"


def corrupt_in_place(path) -> None:
    """Bit rot: the same file, one byte changed."""
    with open(path, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_fsck_is_clean_on_a_healthy_registry(server, oci):
    big, images, index = two_platform_index("healthy")
    for image in images:
        oci.push_image("lib/app", image.digest, image)
    oci.push_manifest("lib/app", "v1", index)
    result = fsck(server, "--json")
    assert result.code == 0, result.stdout + result.stderr
    report = result.report
    assert report["ok"] is True and report["corrupt"] == [] and report["missing"] == []
    assert report["blobsChecked"] == 8  # index, 2 manifests, 2 configs, 3 layers
    assert report["bytesChecked"] == sum(p.stat().st_size for p in
                                         (server.data_dir / "blobs").rglob("*") if p.is_file())


def test_corrupt_layer_found_quarantined_and_restored_by_a_push(server, oci):
    big, images, index = two_platform_index("rot")
    for repo in ("lib/app", "team/tools"):
        for image in images:
            oci.push_image(repo, image.digest, image)
    oci.push_manifest("lib/app", "v1", index)
    oci.push_image("team/tools", "stable", images[0])
    path = server.blob_path(big.digest)
    corrupt_in_place(path)
    rotten = path.read_bytes()

    found = fsck(server, "--json")
    assert found.code == 1
    [corrupt] = found.report["corrupt"]
    assert corrupt["digest"] == big.digest and corrupt["quarantined"] is None
    assert corrupt["repositories"] == [f"{ACCOUNT}/lib/app", f"{ACCOUNT}/team/tools"]
    assert corrupt["tags"] == [f"{ACCOUNT}/lib/app:v1", f"{ACCOUNT}/team/tools:stable"]
    text = fsck(server)
    assert text.code == 1
    assert f"corrupt  {big.digest}" in text.stdout and f"{ACCOUNT}/lib/app:v1" in text.stdout
    assert "berth fsck --repair" in text.stdout
    assert path.read_bytes() == rotten  # checking changes nothing

    repaired = fsck(server, "--repair", "--json")
    assert repaired.code == 1
    moved = repaired.report["corrupt"][0]["quarantined"]
    assert moved.startswith(str(server.data_dir / "quarantine" / "sha256" / big.digest[7:]))
    assert open(moved, "rb").read() == rotten and not path.exists()
    # The registry no longer claims the layer: a client's HEAD says push it again...
    assert oci.head_blob("lib/app", big.digest).status_code == 404
    missing = fsck(server, "--json").report
    assert missing["corrupt"] == []
    assert [m["digest"] for m in missing["missing"]] == [big.digest]
    assert f"{ACCOUNT}/lib/app:v1" in missing["missing"][0]["tags"]

    # ... and pushing it again (what docker does after that 404) restores every image.
    for repo in ("lib/app", "team/tools"):
        assert oci.ensure_blob(repo, big) is True
    for repo, tag in (("lib/app", "v1"), ("team/tools", "stable")):
        expect(oci.get_manifest(repo, tag), 200)
        pulled = expect(oci.get_blob(repo, big.digest), 200)
        assert pulled.content == big.data
    clean = fsck(server, "--json")
    assert clean.code == 0, clean.stdout


def test_corrupt_manifest_is_restored_by_pushing_the_manifest_again(server, oci):
    image = Image.build([random_layer("manifest-rot", 2048)])
    oci.push_image("lib/app", "v1", image)
    path = server.blob_path(image.digest)
    path.write_bytes(path.read_bytes().replace(b"schemaVersion", b"schemaVersioN"))
    repaired = fsck(server, "--repair", "--json")
    assert repaired.code == 1
    [corrupt] = repaired.report["corrupt"]
    assert corrupt["digest"] == image.digest and corrupt["quarantined"]
    assert corrupt["tags"] == [f"{ACCOUNT}/lib/app:v1"]
    oci.push_image("lib/app", "v1", image)
    assert path.read_bytes() == image.manifest.data
    assert fsck(server).code == 0


def test_a_recorded_blob_whose_file_is_gone_is_missing(server, oci):
    image = Image.build([random_layer("gone", 2048)])
    oci.push_image("lib/app", "v1", image)
    os.unlink(server.blob_path(image.layers[0].digest))
    result = fsck(server, "--json")
    assert result.code == 1
    [missing] = result.report["missing"]
    assert missing["digest"] == image.layers[0].digest
    assert "missing" in missing["detail"] and missing["tags"] == [f"{ACCOUNT}/lib/app:v1"]


def test_no_data_directory_is_an_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "registry", "fsck", "--data",
                           str(tmp_path / "nothing")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "no registry data" in done.stderr
    assert not (tmp_path / "nothing").exists()


def test_progress_on_a_terminal_and_plain_output_elsewhere(server, oci):
    oci.push_image("lib/app", "v1", Image.build([random_layer("progress", 3 * 1024 * 1024)]))
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "registry", "fsck", "--data",
                                 str(server.data_dir)], stdout=subprocess.DEVNULL,
                                stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        drawn = _read_all(master)
        assert proc.wait(timeout=120) == 0
    finally:
        os.close(master)
    assert "\r[" in drawn and "\x1b[K" in drawn
    assert "MiB / 3.0 MiB" in drawn and "/s" in drawn and "ETA " in drawn and "100%" in drawn
    plain = fsck(server)
    assert plain.code == 0
    for output in (plain.stdout, plain.stderr):
        assert "\x1b" not in output and "\r" not in output
    assert "checked 3 blobs" in plain.stdout


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode(errors="replace")
