"""A throwaway PostgreSQL cluster for the test suite, one per pytest session.

Why a cluster of our own rather than the machine's: the Debian package's default cluster
(port 5432, durable settings, whatever databases it holds) is shared state we do not control.
Here `initdb` writes a fresh cluster into a temporary directory, it listens on a free port of
127.0.0.1 only (its unix socket sits in the same directory), durability is switched off
because a test database never outlives the session, and every test or server gets a brand-new
database from `create_database()` instead of cleaning up after others.

PostgreSQL refuses to run as root, so as root the server programs run as the `postgres`
system user (created by Debian's postgresql-common) through `runuser`; as anyone else they
run as the current user. Binaries come from the newest /usr/lib/postgresql/<version>/bin;
scripts/test.sh installs Debian's `postgresql` package when it is missing. Layout::

    <tmp>/berth-pg-XXXX/          owned by the server's user, mode 0700
        data/                     the cluster (initdb)
        postgres.log              server log (pg_ctl -l)
        .s.PGSQL.<port>           unix socket
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import psycopg
from psycopg import sql

from tests.support.server import free_port

PG_ROOT = Path("/usr/lib/postgresql")
INSTALL_HINT = ("scripts/test.sh (the test command) installs Debian's `postgresql` package; "
                "or run `apt-get install postgresql`")
SUPERUSER = "postgres"
# Test-friendly settings: nothing here has to survive a crash, and many server processes
# (several workers each, a pool per worker) share one cluster.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "400",
    "shared_buffers": "128MB",
}
_PORT_ATTEMPTS = 3


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries (or no user to run them as) on this machine."""


class PostgresStartError(RuntimeError):
    """initdb or the server failed; the message carries the command output or log tail."""


def find_bindir(root: Path = PG_ROOT) -> Path:
    """The newest `<root>/<version>/bin` holding initdb, pg_ctl and postgres.

    Raises:
        PostgresMissing: no such directory.
    """
    candidates = []
    for bindir in root.glob("*/bin"):
        version = bindir.parent.name
        if not re.fullmatch(r"\d+(\.\d+)*", version):
            continue
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            candidates.append((tuple(int(part) for part in version.split(".")), bindir))
    if not candidates:
        raise PostgresMissing(f"PostgreSQL server binaries not found under {root}/*/bin: "
                              + INSTALL_HINT)
    return max(candidates)[1]


def _run_as() -> tuple[list[str], int | None, int | None]:
    """The command prefix and uid/gid the server programs run as (see module docstring)."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        user = pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise PostgresMissing(f"running as root but there is no `{SUPERUSER}` user to run "
                              "PostgreSQL as: " + INSTALL_HINT) from None
    runuser = shutil.which("runuser")
    if runuser is None:
        raise PostgresMissing("running as root but `runuser` (util-linux) is missing")
    return [runuser, "-u", SUPERUSER, "--"], user.pw_uid, user.pw_gid


def _clean_env() -> dict[str, str]:
    """The environment without PG* variables, which would redirect libpq and pg_ctl."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


class PostgresCluster:
    """One temporary PostgreSQL cluster: `start()`, `create_database()`, `stop()`.

    `stop()` is also registered with atexit at start, so an interrupted session does not
    leave a postmaster behind.
    """

    def __init__(self, *, tmp_root: str | os.PathLike[str] | None = None,
                 startup_timeout: float = 60.0) -> None:
        self.bindir = find_bindir()
        self._prefix, self._uid, self._gid = _run_as()
        self._tmp_root = tmp_root
        self.startup_timeout = startup_timeout
        self.base_dir: Path | None = None
        self.port: int | None = None
        self._running = False

    # -- paths and addresses -----------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self._base() / "data"

    @property
    def log_path(self) -> Path:
        return self._base() / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        """`postgresql://postgres@127.0.0.1:<port>/<database>` (trust auth: no password)."""
        if self.port is None:
            raise RuntimeError("cluster not started")
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _base(self) -> Path:
        if self.base_dir is None:
            raise RuntimeError("cluster not started")
        return self.base_dir

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "PostgresCluster":
        """initdb a fresh cluster, start it on a free port and wait until it accepts
        connections.

        Raises:
            PostgresStartError: initdb failed, or the server did not come up (log attached).
        """
        if self.base_dir is not None:
            raise RuntimeError("cluster already started")
        self.base_dir = Path(tempfile.mkdtemp(prefix="berth-pg-", dir=self._tmp_root))
        atexit.register(self.stop)
        try:
            if self._uid is not None:
                os.chown(self.base_dir, self._uid, self._gid)
            self._initdb()
            self._start_on_free_port()
            self._running = True
            self._check_connect()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_on_free_port(self) -> None:
        for attempt in range(_PORT_ATTEMPTS):
            self.port = free_port()
            try:
                self._pg_ctl_start()
                return
            except PostgresStartError:
                # Another process may have taken the free port between our probe and the
                # server's bind; try a new one, but report any other failure at once.
                if attempt + 1 == _PORT_ATTEMPTS or "already in use" not in self._log_tail(5):
                    raise

    def _initdb(self) -> None:
        self._run([str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                   "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync",
                   "--no-instructions"], what="initdb")
        socket_dir = str(self._base()).replace("'", "''")
        lines = [f"{key} = {value}" for key, value in SETTINGS.items()]
        lines.append(f"unix_socket_directories = '{socket_dir}'")
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# berth tests (tests/support/postgres.py)\n" + "\n".join(lines) + "\n")

    def _pg_ctl_start(self) -> None:
        # -w: pg_ctl polls postmaster.pid until the server reports "ready" (or exits).
        self._run([str(self.bindir / "pg_ctl"), "start", "-w", "-t",
                   str(int(self.startup_timeout)), "-D", str(self.data_dir), "-l",
                   str(self.log_path), "-o", f"-p {self.port}"], what="pg_ctl start")

    def _check_connect(self) -> None:
        """Connect once over TCP, as every user of the cluster will."""
        deadline = time.monotonic() + self.startup_timeout
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=5):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PostgresStartError(f"cannot connect to {self.url()}: {exc}") from None
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server at once (no checkpoint: nothing is kept) and delete the directory.

        Safe to call twice, and before or after a failed start.
        """
        if self.base_dir is None:
            return
        if self.data_dir.exists():
            try:
                stopped = subprocess.run(
                    [*self._prefix, str(self.bindir / "pg_ctl"), "stop", "-w", "-m", "immediate",
                     "-D", str(self.data_dir)], cwd=self.base_dir, env=_clean_env(),
                    stdin=subprocess.DEVNULL, capture_output=True, timeout=60).returncode == 0
            except subprocess.TimeoutExpired:
                stopped = False
            if not stopped:
                self._kill_leftover_postmaster()
        shutil.rmtree(self.base_dir, ignore_errors=True)
        atexit.unregister(self.stop)
        self.base_dir = None
        self._running = False

    def __enter__(self) -> "PostgresCluster":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- databases ---------------------------------------------------------------------------

    def create_database(self, prefix: str = "t") -> str:
        """Create a brand-new, empty database and return its URL.

        The name is `<prefix>_<12 hex>`; `prefix` is lower-cased and reduced to [a-z0-9_].
        """
        if not self._running:
            raise RuntimeError("cluster not started")
        clean = re.sub(r"[^a-z0-9_]+", "_", prefix.lower()).strip("_")[:40] or "t"
        name = f"{clean}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
            # template0: never busy (a connection to template1 would make CREATE DATABASE fail)
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
                sql.Identifier(name)))
        return self.url(name)

    # -- helpers -----------------------------------------------------------------------------

    def _kill_leftover_postmaster(self) -> None:
        """SIGKILL our postmaster if pg_ctl could not stop it (its children exit on their own
        when it is gone), so deleting the directory never leaves a server running. The pid
        is trusted only while its command line still names our data directory."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if str(self.data_dir).encode() in cmdline:
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass

    def _run(self, argv: Sequence[str], *, what: str) -> None:
        proc = subprocess.run([*self._prefix, *argv], cwd=self._base(), env=_clean_env(),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=self.startup_timeout + 30)
        if proc.returncode != 0:
            raise PostgresStartError(
                f"{what} exited with {proc.returncode}\ncommand: {[*self._prefix, *argv]}\n"
                f"--- output ---\n{proc.stdout}{proc.stderr}\n"
                f"--- server log tail ---\n{self._log_tail()}")

    def _log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, RuntimeError):
            return ""
        return "\n".join(text.splitlines()[-lines:])


_shared: PostgresCluster | None = None


def shared_cluster() -> PostgresCluster:
    """The one cluster of this test process, started on first use (stopped at exit by the
    atexit hook `start` registers). The `postgres` fixture and every BerthServer or
    in-process config that the BERTH_TEST_METADATA switch points at PostgreSQL share it."""
    global _shared
    if _shared is None:
        _shared = PostgresCluster().start()
    return _shared
