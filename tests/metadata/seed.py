"""Rows for contract tests, written through the ``Conn`` seam (test-only statements).

The scans, GC and integrity contracts need repositories, blobs, links, manifests and tags on
both backends; these helpers write them directly, as the push path does, without depending
on the repository and manifest queries of other modules. ``claim`` mirrors the push
protocol's first step (``claim_blob``: the blobs row upserted with ``created_at = now``).
"""

from __future__ import annotations

import json
from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as lite

from registry.metadata import tables as t
from registry.metadata.database import Conn, query


def _insert(d, table):
    return (pg.insert if d == "postgresql" else lite.insert)(table)


@query
def _repository(d):
    return sa.insert(t.repositories).values(
        account=sa.bindparam("account"), name=sa.bindparam("name"),
        created_at=sa.bindparam("now"), scan_on_push=sa.bindparam("scan_on_push"),
    ).returning(t.repositories.c.id)


@query
def _claim(d):
    ins = _insert(d, t.blobs).values(digest=sa.bindparam("digest"), size=sa.bindparam("size"),
                                     created_at=sa.bindparam("now"))
    return ins.on_conflict_do_update(index_elements=[t.blobs.c.digest],
                                     set_={"created_at": ins.excluded.created_at})


@query
def _link(d):
    ins = _insert(d, t.repository_blobs).values(
        repository_id=sa.bindparam("repo"), digest=sa.bindparam("digest"),
        linked_at=sa.bindparam("now"))
    return ins.on_conflict_do_update(
        index_elements=[t.repository_blobs.c.repository_id, t.repository_blobs.c.digest],
        set_={"linked_at": ins.excluded.linked_at})


@query
def _manifest(d):
    return sa.insert(t.manifests).values(
        repository_id=sa.bindparam("repo"), digest=sa.bindparam("digest"),
        media_type=sa.bindparam("media_type"), size=sa.bindparam("size"),
        subject_digest=sa.bindparam("subject"), pushed_at=sa.bindparam("now"))


@query
def _reference(d):
    return sa.insert(t.manifest_references).values(
        repository_id=sa.bindparam("repo"), manifest_digest=sa.bindparam("parent"),
        child_digest=sa.bindparam("child"), child_kind=sa.bindparam("kind"))


@query
def _tag(d):
    return sa.insert(t.tags).values(repository_id=sa.bindparam("repo"),
                                    name=sa.bindparam("name"), digest=sa.bindparam("digest"),
                                    updated_at=sa.bindparam("now"))


@query
def _setting(d):
    ins = _insert(d, t.registry_settings).values(
        account=sa.bindparam("account"), name=sa.bindparam("name"),
        value=sa.bindparam("value"), updated_at=sa.bindparam("now"))
    return ins.on_conflict_do_update(index_elements=[t.registry_settings.c.account,
                                                     t.registry_settings.c.name],
                                     set_={"value": ins.excluded.value})


@query
def _jobs(d):
    return (sa.select(t.jobs.c.kind, t.jobs.c.payload, t.jobs.c.priority)
            .where(t.jobs.c.kind == sa.bindparam("kind")).order_by(t.jobs.c.id))


@query
def _blob(d):
    return sa.select(t.blobs.c.size, t.blobs.c.created_at).where(
        t.blobs.c.digest == sa.bindparam("digest"))


@query
def _links_of(d):
    return (sa.select(t.repository_blobs.c.repository_id)
            .where(t.repository_blobs.c.digest == sa.bindparam("digest"))
            .order_by(t.repository_blobs.c.repository_id))


@query
def _manifest_exists(d):
    return sa.select(t.manifests.c.digest).where(t.manifests.c.repository_id ==
                                                 sa.bindparam("repo"),
                                                 t.manifests.c.digest == sa.bindparam("digest"))


def repository(conn: Conn, name: str, *, account: str = "000000000000", now: float = 1.0,
               scan_on_push: bool = False) -> int:
    return conn.scalar(_repository, account=account, name=name, now=now,
                       scan_on_push=int(scan_on_push))


def claim(conn: Conn, digest: str, *, size: int = 1, now: float) -> None:
    conn.run(_claim, digest=digest, size=size, now=now)


def claim_many(conn: Conn, digests: Iterable[str], *, now: float, size: int = 1) -> None:
    conn.many(_claim, [dict(digest=d, size=size, now=now) for d in digests])


def link(conn: Conn, repo: int, digest: str, *, now: float, size: int = 1) -> None:
    """Claim and link a blob (a finished blob upload)."""
    claim(conn, digest, size=size, now=now)
    conn.run(_link, repo=repo, digest=digest, now=now)


def manifest(conn: Conn, repo: int, digest: str, *, now: float, tags: Iterable[str] = (),
             children: Iterable[tuple[str, str]] = (), subject: str | None = None,
             media_type: str = "application/vnd.oci.image.manifest.v1+json") -> None:
    """A manifest (its bytes as a blob), its references (digest, kind) and tags."""
    claim(conn, digest, size=100, now=now)
    conn.run(_manifest, repo=repo, digest=digest, media_type=media_type, size=100,
             subject=subject, now=now)
    for child, kind in children:
        conn.run(_reference, repo=repo, parent=digest, child=child, kind=kind)
    for name in tags:
        conn.run(_tag, repo=repo, name=name, digest=digest, now=now)


def setting(conn: Conn, account: str, name: str, value: str, *, now: float) -> None:
    conn.run(_setting, account=account, name=name, value=value, now=now)


def jobs(conn: Conn, kind: str) -> list[tuple[str, dict, int]]:
    return [(k, json.loads(p), prio) for k, p, prio in conn.all(_jobs, kind=kind)]


def blob(conn: Conn, digest: str) -> tuple[int, float] | None:
    row = conn.one(_blob, digest=digest)
    return None if row is None else (row[0], row[1])


def links_of(conn: Conn, digest: str) -> list[int]:
    return [r[0] for r in conn.all(_links_of, digest=digest)]


def has_manifest(conn: Conn, repo: int, digest: str) -> bool:
    return conn.one(_manifest_exists, repo=repo, digest=digest) is not None


def digest_of(text: str) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
