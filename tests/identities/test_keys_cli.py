"""`berth keys`: generate, id, and a whole rotation against a running server, on SQLite and on
PostgreSQL: a single node moving from its data directory's master.key to a key file, as a
deployment does before it grows a second node.

The rotation, step by step (registry/auth/rotation.py): the server runs on the old key; the
new key becomes key_file with the old one in previous_key_files (both work); `berth keys
rotate` re-seals every secret; the old key leaves the config; every access key still signs,
and a registry password the old key signed gets the usual 401.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys

import pytest

from registry.auth.identities import Identities
from registry.auth.keys import SecretBox
from registry.auth.keys_cli import _Counter
from registry.auth.rotation import RotationReport
from registry.config import load_config
from registry.metadata.factory import open_store
from tests.ecr.conftest import read_credentials
from tests.multinode.test_shared_keys import ecr, login_password, make_user, v2
from tests.support.metadata import UPGRADE_ENV, URL_ENV
from tests.support.server import BerthServer


def berth(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "registry", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


# -- generate and id ---------------------------------------------------------------------------

def test_generate_writes_a_private_key_file_once_and_id_names_it(tmp_path):
    path = tmp_path / "berth.key"
    made = berth("keys", "generate", str(path))
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_size == 32
    key_id = berth("keys", "id", env={"BERTH_KEYS__KEY_FILE": str(path)}).stdout.strip()
    assert f"(id {key_id})" in made.stdout
    before = path.read_bytes()
    again = berth("keys", "generate", str(path))
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr
    assert path.read_bytes() == before
    assert before.hex() not in made.stdout + made.stderr + again.stdout + again.stderr


@pytest.mark.parametrize("problem", ["missing", "exposed", "short"])
def test_id_reports_an_unusable_key_file(tmp_path, problem):
    path = tmp_path / "berth.key"
    if problem != "missing":
        path.write_bytes(os.urandom(32 if problem == "exposed" else 16))
        path.chmod(0o644 if problem == "exposed" else 0o600)
    done = berth("keys", "id", env={"BERTH_KEYS__KEY_FILE": str(path)})
    message = {"missing": "No such file or directory", "exposed": "accessible to group or "
               "others", "short": "exactly 32 bytes"}[problem]
    assert done.returncode == 2 and message in done.stderr and done.stdout == ""


def test_id_of_a_data_directory_never_creates_a_key(tmp_path):
    done = berth("keys", "id", "--data", str(tmp_path / "data"))
    assert done.returncode == 2 and "no master key yet" in done.stderr
    assert not (tmp_path / "data" / "master.key").exists()


def test_serve_refuses_to_start_on_an_unusable_key_file(tmp_path):
    path = tmp_path / "berth.key"
    path.write_bytes(os.urandom(32))
    path.chmod(0o640)
    done = berth("serve", "--data", str(tmp_path / "data"), "--listen", "127.0.0.1:0",
                 env={"BERTH_KEYS__KEY_FILE": str(path), URL_ENV: ""})
    assert done.returncode == 2
    assert "berth: " in done.stderr and "accessible to group or others (mode 0640)" in done.stderr
    assert "Traceback" not in done.stderr


def test_rotate_lists_secrets_no_configured_key_opens_and_exits_1(tmp_path):
    stranger_config = load_config(None, environ={}, overrides={
        "data_dir": str(tmp_path / "data"), "metadata.url": "", "metadata.upgrade": "auto"})
    (tmp_path / "data").mkdir(mode=0o700)
    store = open_store(stranger_config)
    try:
        identities = Identities(store, SecretBox(os.urandom(32)))
        identities.create_user("000000000000", "lost")
        lost, secret = identities.create_access_key("000000000000", "lost")
    finally:
        store.db.close_sync()
    path = tmp_path / "berth.key"
    assert berth("keys", "generate", str(path)).returncode == 0
    done = berth("keys", "rotate", "--data", str(tmp_path / "data"),
                 env={"BERTH_KEYS__KEY_FILE": str(path), URL_ENV: ""})
    assert done.returncode == 1
    assert "1 access key secrets examined, 0 re-sealed" in done.stdout
    assert "1 secrets open under no configured key" in done.stderr and lost.id in done.stderr
    assert secret not in done.stdout + done.stderr


def test_rotate_draws_progress_on_a_terminal_only():
    class Stream(list):
        def __init__(self, tty: bool) -> None:
            super().__init__()
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

        def write(self, text: str) -> None:
            self.append(text)

        def flush(self) -> None:
            pass

    report = RotationReport(master_key_id="0123456789abcdef", examined=400, resealed=380)
    for tty, expected in ((True, ["\rre-sealing: 400 examined, 380 re-sealed\x1b[K", "\n"]),
                          (False, [])):
        stream = Stream(tty)
        counter = _Counter(stream)
        counter(report)
        counter.finish()
        assert stream == expected


# -- a rotation, end to end ------------------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def database_env(request) -> dict[str, str]:
    if request.param == "sqlite":
        return {URL_ENV: ""}  # SQLite in the data directory, whatever the session's switch
    url = request.getfixturevalue("postgres").create_database("rotation")
    return {URL_ENV: url, UPGRADE_ENV: "auto"}


def sealers(server: BerthServer) -> set[str | None]:
    """The ids of the master keys the stored secrets are sealed by, read through the store."""
    config = load_config(None, environ={**server.env, "BERTH_DATA_DIR": str(server.data_dir)},
                         warn=lambda message: None)
    store = open_store(config)
    try:
        stored = store.sealed_secrets(after="", limit=1000)
    finally:
        store.db.close_sync()
    box = SecretBox(os.urandom(32))  # reads the header only
    return {box.sealed_by(base64.b64decode(sealed)) for _, sealed in stored}


def key_id(server: BerthServer) -> str:
    done = berth("keys", "id", "--data", str(server.data_dir), env=server.env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_rotating_to_a_new_key_file_keeps_every_access_key_working(tmp_path, database_env):
    server = BerthServer(tmp_path / "node", env={**database_env,
                                                 "BERTH_SCANNER__ENABLED": "false"})
    try:
        server.start()
        admin = read_credentials(server.data_dir / "credentials")
        ci = make_user(server)
        old_id = key_id(server)
        old_password = login_password(server, ci)
        assert old_password.split(".")[1] == old_id  # a password names the key that signed it
        assert sealers(server) == {old_id}

        new_key = tmp_path / "keys" / "new.key"
        new_key.parent.mkdir(mode=0o700)
        assert berth("keys", "generate", str(new_key)).returncode == 0
        server.env.update({"BERTH_KEYS__KEY_FILE": str(new_key),
                           "BERTH_KEYS__PREVIOUS_KEY_FILES": str(server.data_dir / "master.key")})
        server.restart()
        new_id = key_id(server)
        assert new_id != old_id
        # Both keys work while the rotation runs; new passwords carry the new key's id.
        assert v2(server, old_password).status_code == 200
        ecr(server, ci).describe_repositories()
        new_password = login_password(server, admin)
        assert new_password.split(".")[1] == new_id
        late = make_user(server)  # sealed by the new key already
        assert sealers(server) == {old_id, new_id}

        rotated = berth("keys", "rotate", "--data", str(server.data_dir), "--batch", "1",
                        env=server.env)
        assert rotated.returncode == 0, rotated.stderr
        assert rotated.stdout.strip() == (f"master key {new_id}: 3 access key secrets examined,"
                                          " 2 re-sealed, 1 already sealed by it")
        assert sealers(server) == {new_id}
        again = berth("keys", "rotate", "--json", "--data", str(server.data_dir),
                      env=server.env)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout) == {
            "master_key_id": new_id, "examined": 3, "resealed": 0, "already_current": 3,
            "changed_meanwhile": 0, "unreadable": []}

        del server.env["BERTH_KEYS__PREVIOUS_KEY_FILES"]
        server.restart()
        for creds in (admin, ci, late):
            ecr(server, creds).describe_repositories()
        assert v2(server, new_password).status_code == 200
        assert v2(server, login_password(server, late)).status_code == 200
        refused = v2(server, old_password)
        garbage = v2(server, "bt2.0000000000000000.e30.AAAA")
        assert refused.status_code == garbage.status_code == 401
        assert refused.json() == garbage.json() == {"errors": [{
            "code": "UNAUTHORIZED", "message": "authorization token invalid"}]}
        assert refused.headers["WWW-Authenticate"] == garbage.headers["WWW-Authenticate"]
    finally:
        server.stop()
