"""A hand-written stand-in for the Scanner protocol, for tests of workers and APIs that need
scan results without running Trivy. It passes the same contract suite as TrivyScanner
(tests/scanner/test_contract.py)."""

from __future__ import annotations

from collections.abc import Mapping

from scanner import ScanError, ScanReport, ScanStatus, ScanTarget
from scanner.trivy import UNSUPPORTED_DESCRIPTION


class StaticScanner:
    """Answers each manifest digest from a table: a ScanReport to return, or an exception to
    raise (e.g. ``ScanError("busy", retryable=True)``); unknown digests are unsupported
    images. ``calls`` records every target, in order."""

    name = "static"

    def __init__(self, results: Mapping[str, ScanReport | Exception] | None = None, *,
                 version: str = "1.0.0") -> None:
        self.results = dict(results or {})
        self._version = version
        self.calls: list[ScanTarget] = []

    async def version(self) -> str:
        return self._version

    async def scan(self, target: ScanTarget) -> ScanReport:
        self.calls.append(target)
        if not (target.layout_dir / "index.json").is_file():
            raise ScanError(f"no OCI layout at {target.layout_dir}", retryable=False)
        result = self.results.get(target.manifest_digest)
        if isinstance(result, Exception):
            raise result
        if result is None:
            return ScanReport(ScanStatus.UNSUPPORTED_IMAGE, UNSUPPORTED_DESCRIPTION, (), None,
                              None, None, self.name, self._version)
        return result
