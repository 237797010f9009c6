"""Berth's scan engine: Trivy behind a small protocol, its DB, and per-scan image layouts.

    base       Scanner protocol, ScanTarget, ScanReport, ScanStatus, ScanError
    findings   Finding, parse_trivy_report, severity_counts, fixable_count
    layout     materialize_layout: a hard-linked OCI layout of one image manifest
    trivy      TrivyScanner, find_trivy
    trivydb    the DB artifact (build_db_artifact, db_artifact_manifest), install_db,
               read_db_metadata, InvalidDatabase

Scan jobs, triggers, the ECR API and webhooks live elsewhere and use this package through
these names only.
"""

from scanner.base import Scanner, ScanError, ScanReport, ScanStatus, ScanTarget
from scanner.findings import (Cvss, Finding, ParsedReport, ReportError, fixable_count,
                              parse_trivy_report, severity_counts)
from scanner.layout import LayoutError, NotAnImage, is_image_manifest, materialize_layout
from scanner.trivy import TrivyScanner, find_trivy
from scanner.trivydb import (DbMetadata, InvalidDatabase, build_db_artifact,
                             db_artifact_manifest, install_db, read_db_metadata)

__all__ = [
    "Cvss", "DbMetadata", "Finding", "InvalidDatabase", "LayoutError", "NotAnImage",
    "ParsedReport", "ReportError", "ScanError", "ScanReport", "ScanStatus", "ScanTarget",
    "Scanner", "TrivyScanner", "build_db_artifact", "db_artifact_manifest", "find_trivy",
    "fixable_count", "install_db", "is_image_manifest", "materialize_layout",
    "parse_trivy_report", "read_db_metadata", "severity_counts",
]
