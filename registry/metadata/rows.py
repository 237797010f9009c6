"""Row <-> value mapping shared by the metadata queries: which columns a query selects for a
value, and how a row of them becomes that value."""

from __future__ import annotations

import json
from typing import Any

from registry.metadata import tables as t
from registry.metadata.models import ManifestRecord, Repository, RepositorySettings

_r = t.repositories
REPOSITORY_COLUMNS = (_r.c.id, _r.c.account, _r.c.name, _r.c.created_at,
                      _r.c.image_tag_mutability, _r.c.mutability_filters, _r.c.scan_on_push,
                      _r.c.encryption_type, _r.c.kms_key, _r.c.policy_text)

_m = t.manifests
MANIFEST_COLUMNS = (_m.c.digest, _m.c.media_type, _m.c.size, _m.c.artifact_type,
                    _m.c.subject_digest, _m.c.annotations, _m.c.pushed_at)


def repository_row(row: tuple[Any, ...] | None) -> Repository | None:
    if row is None:
        return None
    settings = RepositorySettings(image_tag_mutability=row[4],
                                  mutability_filters=tuple(json.loads(row[5] or "[]")),
                                  scan_on_push=bool(row[6]), encryption_type=row[7],
                                  kms_key=row[8])
    return Repository(id=row[0], account=row[1], name=row[2], created_at=row[3],
                      settings=settings, policy_text=row[9])


def manifest_row(row: tuple[Any, ...] | None) -> ManifestRecord | None:
    if row is None:
        return None
    annotations = json.loads(row[5]) if row[5] else None
    return ManifestRecord(digest=row[0], media_type=row[1], size=row[2], artifact_type=row[3],
                          subject_digest=row[4], annotations=annotations, pushed_at=row[6])


def insert(d: str, table):
    """An INSERT with the dialect's ON CONFLICT clauses (SQLite and PostgreSQL spell them the
    same in SQLAlchemy, but each dialect has its own construct)."""
    if d == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert
    return sqlite_insert(table)
