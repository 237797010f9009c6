"""The scanner protocol and the values that cross it.

A scanner turns one image manifest, laid out as an OCI image layout directory, into a
``ScanReport``. Outcomes about the image or the installation (no OS to scan, no vulnerability
database, Trivy refused the image) are reports with a status; only conditions that may pass
on their own (a timeout, a killed process) are raised, as ``ScanError(retryable=True)``, so a
worker's rule is simple: store every report, retry retryable errors with backoff, and record
anything else raised as FAILED.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from scanner.findings import Finding


class ScanStatus(str, enum.Enum):
    """Terminal scan states, spelled as ECR's ``imageScanStatus.status``."""

    COMPLETE = "COMPLETE"
    UNSUPPORTED_IMAGE = "UNSUPPORTED_IMAGE"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class ScanTarget:
    """An image manifest inside an OCI image layout (see ``scanner.layout``)."""

    layout_dir: Path
    manifest_digest: str  # an image manifest, never an index: scan an index per platform


@dataclass(frozen=True, slots=True)
class ScanReport:
    status: ScanStatus
    description: str  # ECR's imageScanStatus.description: why, for FAILED/UNSUPPORTED_IMAGE
    findings: tuple[Finding, ...]
    os_family: str | None  # "debian", "alpine", … as Trivy detected it
    os_name: str | None  # "12.15"
    db_updated_at: datetime | None  # UpdatedAt of the vulnerability DB used (aware, UTC)
    scanner_name: str
    scanner_version: str
    sbom: bytes | None = None  # CycloneDX JSON of the packages found, when produced
    package_count: int = 0


class ScanError(Exception):
    """A scan could not produce a report.

    ``retryable`` is True for conditions that may pass on a later attempt (timeout, the
    scanner process killed); False for a target the scanner can never read (the layout or
    manifest is missing), which a worker records as FAILED without retrying.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@runtime_checkable
class Scanner(Protocol):
    name: str

    async def version(self) -> str:
        """The scanner's version, e.g. ``"0.76.0"``.

        Raises:
            ScanError: the scanner binary is missing or does not answer (retryable=False).
        """

    async def scan(self, target: ScanTarget) -> ScanReport:
        """Scan one image manifest and report its findings.

        Never raises for a missing or broken installation (no binary, no DB): that is a
        FAILED report with a description saying what to do. An image with nothing the
        scanner can match (no OS, or an OS it does not support, and no language packages)
        is UNSUPPORTED_IMAGE, as ECR reports it.

        Raises:
            ScanError: retryable=True on a timeout or an abnormally ended scanner process;
                retryable=False when ``target`` does not name a readable image manifest.
        """
