"""Identity policies kept as JSON files, reloaded when they change.

Layout (anything else is reported, never guessed at)::

    <dir>/
      <account-id>/                 12 digits
        <user-name>/                IAM user name, [\\w+=,.@-]{1,64}
          <policy-name>.json        one identity policy; the stem is its name

Hidden files and editor backups (``.x.swp``, ``x.json~``) are skipped silently.

``reload()`` stats every entry; only when some file was added, removed or changed (inode, size,
mtime, ctime) does it re-read and validate. A user's policies are replaced only when ALL of that
user's files are valid: an invalid file (half-saved, typo) is reported with its path and the
element path of each problem, and the user's previous valid set stays in force until the file
is fixed. Other users are unaffected.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
from pathlib import Path

from policies import PolicyError, PolicyKind, parse_policy
from registry.auth.iam_rules import ACCOUNT_ID, POLICY_NAME, USER_NAME

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 64 * 1024  # ten times IAM's 6,144-character limit, whitespace included

_UserKey = tuple[str, str]  # (account, user name)
_Policies = tuple[tuple[str, str], ...]  # ((policy name, document text), ...), sorted


def _read_regular_file(path: Path) -> bytes:
    """Up to ``MAX_FILE_BYTES + 1`` bytes of ``path``.

    Opened without blocking and checked after opening, so a FIFO (or a file swapped for one
    since the scan) is refused instead of hanging the reload.

    Raises:
        OSError: unreadable, or not a regular file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return handle.read(MAX_FILE_BYTES + 1)


def _skipped(name: str) -> bool:
    return name.startswith(".") or name.endswith("~")


class _Scan:
    """One walk of the tree: what is where, and the fingerprint that detects changes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fingerprint: list[tuple[str, int, int, int, int]] = []
        self.users: dict[_UserKey, list[Path]] = {}
        self.layout_problems: list[str] = []
        if not root.is_dir():
            self.layout_problems.append(f"{root}: policy directory does not exist")
            return
        for account_dir in self._entries(root):
            if not (account_dir.is_dir() and ACCOUNT_ID.fullmatch(account_dir.name)):
                self._ignored(account_dir, "expected a directory named by a 12-digit account id")
                continue
            for user_dir in self._entries(account_dir):
                if not (user_dir.is_dir() and USER_NAME.fullmatch(user_dir.name)):
                    self._ignored(user_dir, "expected a directory named by an IAM user name")
                    continue
                files = self.users.setdefault((account_dir.name, user_dir.name), [])
                for path in self._entries(user_dir):
                    if path.suffix == ".json" and path.is_file() and POLICY_NAME.fullmatch(path.stem):
                        files.append(path)
                    else:
                        self._ignored(path, "expected <policy-name>.json with a name matching "
                                            r"[\w+=,.@-]{1,128}")

    def _entries(self, directory: Path) -> list[Path]:
        try:
            names = sorted(os.listdir(directory))
        except OSError as exc:
            self.layout_problems.append(f"{directory}: cannot list: {exc.strerror}")
            return []
        paths = []
        for name in names:
            if _skipped(name):
                continue
            path = directory / name
            try:
                st = path.stat()
            except OSError:
                continue  # removed while we looked; the next reload sees the new state
            self.fingerprint.append((str(path), st.st_ino, st.st_size, st.st_mtime_ns,
                                     st.st_ctime_ns))
            paths.append(path)
        return paths

    def _ignored(self, path: Path, why: str) -> None:
        self.layout_problems.append(f"{path}: ignored: {why}")


class PolicyDirectory:
    """The identity policies under one directory; thread-safe.

    ``policies_for`` never touches the disk: it reads the set installed by the last
    ``reload()``, which the server runs periodically (from a thread: it does file I/O).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fingerprint: list[tuple[str, int, int, int, int]] | None = None
        self._policies: dict[_UserKey, _Policies] = {}
        self._problems: list[str] = []
        self._lock = threading.Lock()

    @property
    def problems(self) -> list[str]:
        """The problems found by the last re-read (still present until the files change)."""
        return list(self._problems)

    def policies_for(self, account: str, user_name: str) -> list[tuple[str, str]]:
        """``(policy name, document text)`` of the user's file policies in force, by name."""
        return list(self._policies.get((account, user_name), ()))

    def reload(self) -> list[str]:
        """Re-read the directory if anything in it changed.

        Returns the problems found by this re-read (``"<file>: <element path>: <message>"``,
        one per problem), or ``[]`` when nothing changed; the caller logs them (this module
        logs one warning per user whose previous policies were kept). A user with any problem
        file keeps their previous valid policies.
        """
        with self._lock:
            scan = _Scan(self.path)
            if scan.fingerprint == self._fingerprint and self._fingerprint is not None:
                return []
            problems = list(scan.layout_problems)
            installed: dict[_UserKey, _Policies] = {}
            for user, files in scan.users.items():
                policies, user_problems = self._load_user(files)
                if user_problems:
                    problems.extend(user_problems)
                    kept = self._policies.get(user, ())
                    if kept:
                        installed[user] = kept
                    log.warning("invalid policy files, previous policies kept",
                                extra={"account": user[0], "user_name": user[1],
                                       "kept": [name for name, _ in kept]})
                else:
                    installed[user] = policies
            self._policies = installed
            self._problems = problems
            self._fingerprint = scan.fingerprint
            log.info("policy files loaded", extra={
                "directory": str(self.path), "users": len(installed),
                "policies": sum(len(p) for p in installed.values()), "problems": len(problems)})
            return problems

    @staticmethod
    def _load_user(files: list[Path]) -> tuple[_Policies, list[str]]:
        policies, problems = [], []
        for path in files:
            try:
                raw = _read_regular_file(path)
            except OSError as exc:
                problems.append(f"{path}: cannot read: {exc.strerror or exc}")
                continue
            if len(raw) > MAX_FILE_BYTES:
                problems.append(f"{path}: larger than {MAX_FILE_BYTES} bytes")
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                problems.append(f"{path}: not UTF-8 text")
                continue
            try:
                parse_policy(text, kind=PolicyKind.IDENTITY, name=path.stem)
            except PolicyError as exc:
                problems.extend(f"{path}: {problem}" for problem in exc.problems)
                continue
            except Exception as exc:  # noqa: BLE001 - an operator's file must never stop a reload
                log.exception("policy file could not be parsed", extra={"path": str(path)})
                problems.append(f"{path}: cannot parse: {exc.__class__.__name__}")
                continue
            policies.append((path.stem, text))
        return tuple(sorted(policies)), problems
