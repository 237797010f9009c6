"""SQL for online garbage collection, one statement per rule.

Every delete re-states its whole condition, so a row that a concurrent push made live again
(a new tag, a manifest now referencing a blob, a refreshed link) is simply not deleted: the
transaction that would remove it sees the newer state (DESIGN: online GC, never
stop-the-world).
"""

from __future__ import annotations

import sqlite3

# An untagged manifest nothing points at: no tag, no parent index in the repository, and no
# live subject (a referrer lives as long as its subject).
_GARBAGE_MANIFEST = """
    m.pushed_at < :cutoff
    AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id
                    AND t.digest = m.digest)
    AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.repository_id = m.repository_id
                    AND r.child_digest = m.digest)
    AND NOT (m.subject_digest IS NOT NULL AND EXISTS (
        SELECT 1 FROM manifests s WHERE s.repository_id = m.repository_id
        AND s.digest = m.subject_digest))
"""

_GARBAGE_LINK = """
    l.linked_at < :cutoff
    AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.repository_id = l.repository_id
                    AND r.child_digest = l.digest)
    AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = l.repository_id
                    AND m.digest = l.digest)
"""

_GARBAGE_BLOB = """
    b.created_at < :cutoff
    AND NOT EXISTS (SELECT 1 FROM repository_blobs l WHERE l.digest = b.digest)
    AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = b.digest)
"""


def garbage_manifests(conn: sqlite3.Connection, cutoff: float) -> list[tuple[int, str, str]]:
    return conn.execute(
        "SELECT m.repository_id, r.account, r.name || '@' || m.digest FROM manifests m "
        f"JOIN repositories r ON r.id = m.repository_id WHERE {_GARBAGE_MANIFEST}",
        {"cutoff": cutoff}).fetchall()


def delete_garbage_manifest(conn: sqlite3.Connection, repository_id: int, digest: str,
                            cutoff: float) -> bool:
    cur = conn.execute(
        f"DELETE FROM manifests AS m WHERE m.repository_id = :repo AND m.digest = :digest "
        f"AND {_GARBAGE_MANIFEST}", {"repo": repository_id, "digest": digest, "cutoff": cutoff})
    return cur.rowcount > 0


def garbage_links(conn: sqlite3.Connection, cutoff: float) -> list[tuple[int, str]]:
    return conn.execute(
        f"SELECT l.repository_id, l.digest FROM repository_blobs l WHERE {_GARBAGE_LINK}",
        {"cutoff": cutoff}).fetchall()


def delete_garbage_link(conn: sqlite3.Connection, repository_id: int, digest: str,
                        cutoff: float) -> bool:
    cur = conn.execute(
        f"DELETE FROM repository_blobs AS l WHERE l.repository_id = :repo AND l.digest = :digest "
        f"AND {_GARBAGE_LINK}", {"repo": repository_id, "digest": digest, "cutoff": cutoff})
    return cur.rowcount > 0


def garbage_blobs(conn: sqlite3.Connection, cutoff: float) -> list[tuple[str, int]]:
    return conn.execute(f"SELECT b.digest, b.size FROM blobs b WHERE {_GARBAGE_BLOB}",
                        {"cutoff": cutoff}).fetchall()


def delete_garbage_blob(conn: sqlite3.Connection, digest: str, cutoff: float) -> bool:
    cur = conn.execute(f"DELETE FROM blobs AS b WHERE b.digest = :digest AND {_GARBAGE_BLOB}",
                       {"digest": digest, "cutoff": cutoff})
    return cur.rowcount > 0


def blob_recorded(conn: sqlite3.Connection, digest: str) -> bool:
    return conn.execute("SELECT 1 FROM blobs WHERE digest = ?", (digest,)).fetchone() is not None


class CollectQueries:
    """Store methods of this module (being moved here from the functions above)."""
