"""Scan results per (repository, manifest): written by the scanner, read by the ECR API.

Findings are stored as one JSON document per image (normalised rows, scanning.md §11.4):
an image's findings are always read and paginated together, never joined.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ScanRecord:
    repository_id: int
    manifest_digest: str
    status: str
    description: str
    scan_type: str
    scanner: str | None
    scanner_version: str | None
    db_updated_at: float | None
    requested_at: float
    completed_at: float | None
    severity_counts: dict[str, int]
    findings: list[dict[str, Any]]
    os_family: str | None
    os_name: str | None


_COLUMNS = ("repository_id, manifest_digest, status, description, scan_type, scanner, "
            "scanner_version, db_updated_at, requested_at, completed_at, severity_counts, "
            "findings, os_family, os_name")


def _record(row: tuple[Any, ...] | None) -> ScanRecord | None:
    if row is None:
        return None
    values = list(row)
    values[10] = json.loads(values[10] or "{}")
    values[11] = json.loads(values[11] or "[]")
    return ScanRecord(*values)


def mark_scan_requested(conn: sqlite3.Connection, repository_id: int, digest: str,
                        scan_type: str) -> None:
    """Record a scan as IN_PROGRESS (inside the caller's transaction)."""
    conn.execute(
        "INSERT INTO scan_results (repository_id, manifest_digest, status, description, "
        "scan_type, requested_at) VALUES (?, ?, 'IN_PROGRESS', '', ?, ?) "
        "ON CONFLICT (repository_id, manifest_digest) DO UPDATE SET "
        "status = 'IN_PROGRESS', description = '', scan_type = excluded.scan_type, "
        "requested_at = excluded.requested_at",
        (repository_id, digest, scan_type, time.time()))


class ScanQueries:
    """Mixed into ``SQLiteMetadataStore``."""

    async def get_scan(self, repository_id: int, digest: str) -> ScanRecord | None:
        return _record(self._read_one(f"SELECT {_COLUMNS} FROM scan_results WHERE "
                                      "repository_id = ? AND manifest_digest = ?",
                                      (repository_id, digest)))

    async def scan_summaries(self, repository_id: int) -> dict[str, ScanRecord]:
        """Every scan of a repository without findings (for DescribeImages)."""
        columns = _COLUMNS.replace("findings", "NULL")
        rows = self._read(f"SELECT {columns} FROM scan_results WHERE repository_id = ?",
                          (repository_id,))
        return {r.manifest_digest: r for r in map(_record, rows) if r is not None}

    async def start_scan(self, repository_id: int, digest: str, *, scan_type: str,
                         min_interval: float | None, enqueue) -> bool:
        """Mark a scan IN_PROGRESS and enqueue its job in one transaction.

        ``min_interval``: refuse (return False) when the previous scan of this image was
        requested less than that many seconds ago (ECR's one basic scan per 24 hours).
        ``enqueue(conn)`` writes the job in the same transaction, so a request is never
        recorded without the work that fulfils it.
        """
        def start(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT requested_at FROM scan_results WHERE repository_id = ? "
                               "AND manifest_digest = ?", (repository_id, digest)).fetchone()
            if row is not None and min_interval is not None and \
                    time.time() - row[0] < min_interval:
                return False
            mark_scan_requested(conn, repository_id, digest, scan_type)
            enqueue(conn)
            return True

        return await self.transaction(start)

    async def finish_scan(self, repository_id: int, digest: str, *, status: str,
                          description: str, scanner: str | None, scanner_version: str | None,
                          db_updated_at: float | None, severity_counts: dict[str, int],
                          findings: list[dict[str, Any]], os_family: str | None,
                          os_name: str | None, events=()) -> None:
        def finish(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE scan_results SET status = ?, description = ?, scanner = ?, "
                "scanner_version = ?, db_updated_at = ?, completed_at = ?, severity_counts = ?, "
                "findings = ?, os_family = ?, os_name = ? WHERE repository_id = ? AND "
                "manifest_digest = ?",
                (status, description, scanner, scanner_version, db_updated_at, time.time(),
                 json.dumps(severity_counts), json.dumps(findings), os_family, os_name,
                 repository_id, digest))
            self._add_events(conn, events)

        await self.transaction(finish)

    async def parent_scans(self, repository_id: int, child_digest: str, *, kind: str
                           ) -> list[tuple[str, str | None, dict[str, int]]]:
        """Every manifest of the repository that references ``child_digest`` — a blob (a
        layer or config, ``kind="blob"``) or a manifest (an index's child,
        ``kind="manifest"``) — with its scan's status and severity counts (None and {} when
        it was never scanned), in digest order."""
        rows = self._read(
            "SELECT r.manifest_digest, s.status, s.severity_counts FROM manifest_references r "
            "LEFT JOIN scan_results s ON s.repository_id = r.repository_id "
            "AND s.manifest_digest = r.manifest_digest WHERE r.repository_id = ? "
            "AND r.child_digest = ? AND r.child_kind = ? ORDER BY r.manifest_digest",
            (repository_id, child_digest, kind))
        return [(digest, status, json.loads(counts or "{}")) for digest, status, counts in rows]

    async def scans_older_than_db(self, db_updated_at: float) -> list[tuple[int, str]]:
        """Completed scans made with an older vulnerability DB (for continuous rescans)."""
        return [(r[0], r[1]) for r in self._read(
            "SELECT repository_id, manifest_digest FROM scan_results WHERE status IN "
            "('COMPLETE', 'FAILED', 'UNSUPPORTED_IMAGE') AND (db_updated_at IS NULL OR "
            "db_updated_at < ?)", (db_updated_at,))]
