"""SQL for blob integrity checks (``berth fsck``, the periodic scrub).

``read_snapshot`` reads, in one read transaction on a connection of its own (so a server's
event-loop reader is never shared with a scrub thread), what fsck needs to walk every tag's
closure. ``forget_blob`` makes the registry stop claiming a blob whose bytes were found
corrupt, so clients push it again: docker's HEAD then answers 404 and the layer is
re-uploaded; manifests stay (they are re-pushed by the same client push).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from registry.metadata.sqlite_connect import connect


@dataclass
class RegistrySnapshot:
    repositories: dict[int, str] = field(default_factory=dict)  # id -> "account/name"
    tags: list[tuple[int, str, str]] = field(default_factory=list)  # repository, tag, digest
    manifests: set[tuple[int, str]] = field(default_factory=set)
    # (repository, manifest digest) -> [(child digest, "blob" | "manifest")]
    references: dict[tuple[int, str], list[tuple[str, str]]] = field(default_factory=dict)
    links: set[tuple[int, str]] = field(default_factory=set)
    blobs: dict[str, int] = field(default_factory=dict)  # digest -> size


def read_snapshot(path: Path) -> RegistrySnapshot:
    """Everything fsck walks, as one consistent snapshot (WAL: writers are not blocked)."""
    conn = connect(path)
    try:
        conn.execute("BEGIN")
        snap = RegistrySnapshot()
        for repo_id, account, name in conn.execute(
                "SELECT id, account, name FROM repositories"):
            snap.repositories[repo_id] = f"{account}/{name}"
        snap.tags = conn.execute("SELECT repository_id, name, digest FROM tags").fetchall()
        snap.manifests = set(conn.execute("SELECT repository_id, digest FROM manifests"))
        for repo_id, parent, child, kind in conn.execute(
                "SELECT repository_id, manifest_digest, child_digest, child_kind "
                "FROM manifest_references"):
            snap.references.setdefault((repo_id, parent), []).append((child, kind))
        snap.links = set(conn.execute("SELECT repository_id, digest FROM repository_blobs"))
        snap.blobs = dict(conn.execute("SELECT digest, size FROM blobs"))
        conn.execute("COMMIT")
        return snap
    finally:
        conn.close()


def still_recorded(path: Path, digests: list[str]) -> set[str]:
    """Which of ``digests`` have a blob row right now (to drop findings a concurrent GC or
    repair made moot since the snapshot)."""
    conn = connect(path)
    try:
        return {d for d in digests
                if conn.execute("SELECT 1 FROM blobs WHERE digest = ?", (d,)).fetchone()}
    finally:
        conn.close()


def blob_users(conn: sqlite3.Connection, digest: str) -> list[str]:
    """The repositories ("account/name") that link or hold ``digest`` as a manifest."""
    rows = conn.execute(
        "SELECT r.account || '/' || r.name FROM repositories r WHERE r.id IN "
        "(SELECT repository_id FROM repository_blobs WHERE digest = ? "
        "UNION SELECT repository_id FROM manifests WHERE digest = ?) ORDER BY 1",
        (digest, digest))
    return [row[0] for row in rows]


def forget_blob(conn: sqlite3.Connection, digest: str) -> int:
    """Unlink a blob from every repository and drop its row (kept while a manifest row uses
    the digest: the manifest's own bytes are restored by re-pushing the manifest). Returns
    the number of repository links removed."""
    links = conn.execute("DELETE FROM repository_blobs WHERE digest = ?", (digest,)).rowcount
    conn.execute("DELETE FROM blobs WHERE digest = ? AND NOT EXISTS "
                 "(SELECT 1 FROM manifests WHERE digest = ?)", (digest, digest))
    return links


class IntegrityQueries:
    """Store methods of this module (being moved here from the functions above)."""
