"""A new vulnerability DB queues rescans of CONTINUOUS_SCAN images, once across processes:
two workers that install the same DB announce it once."""

from __future__ import annotations

import asyncio
import json

import sqlalchemy as sa

from registry import scanning
from registry.config import load_config
from registry.metadata import tables as t
from registry.metadata.database import query
from registry.metadata.store import SQLiteMetadataStore
from scanner.dbsync import DatabaseSync

ACCOUNT = "000000000000"
CONTINUOUS = scanning.ScanningConfiguration("ENHANCED", (
    scanning.ScanRule("CONTINUOUS_SCAN", ("prod/*",)),))


@query
def _scan_jobs(d):
    return (sa.select(t.jobs.c.payload).where(t.jobs.c.kind == scanning.SCAN_JOB)
            .order_by(t.jobs.c.id))


async def rescan_reasons(store) -> list[tuple[str, str]]:
    rows = await store.db.read(lambda c: c.all(_scan_jobs))
    return [(p["repository"], p["reason"]) for p in (json.loads(r[0]) for r in rows)]


async def scanned(store, repo, digest: str, db_updated_at: float) -> None:
    await store.start_scan(scanning.scan_request(repo, digest, scan_type="ENHANCED",
                                                 reason="push", priority=0),
                           min_interval=None)
    assert await store.finish_scan(repo.id, digest, status="COMPLETE", description="",
                                   scanner="trivy", scanner_version="1",
                                   db_updated_at=db_updated_at, severity_counts={},
                                   findings=[], os_family=None, os_name=None)


async def test_two_workers_announce_a_new_db_once(tmp_path):
    config = load_config(None, environ={}, overrides={"data_dir": str(tmp_path)})
    stores = [SQLiteMetadataStore(tmp_path / "metadata.db") for _ in range(2)]
    first = stores[0]
    try:
        await scanning.save_configuration(first, ACCOUNT, CONTINUOUS)
        prod = await first.ensure_repository(ACCOUNT, "prod/api")
        dev = await first.ensure_repository(ACCOUNT, "dev/api")
        await scanned(first, prod, "sha256:" + "a" * 64, db_updated_at=100.0)
        await scanned(first, prod, "sha256:" + "b" * 64, db_updated_at=300.0)  # newer DB
        await scanned(first, dev, "sha256:" + "c" * 64, db_updated_at=100.0)  # not continuous
        workers = [DatabaseSync(store, None, config, tmp_path / "db") for store in stores]
        await asyncio.gather(*[w._announce("sha256:" + "d" * 64, 200.0) for w in workers])
        reasons = await rescan_reasons(first)
        assert reasons[3:] == [("prod/api", "database-update")]
        await workers[0]._announce("sha256:" + "d" * 64, 200.0)  # a restart sees it again
        assert len(await rescan_reasons(first)) == 4
    finally:
        for store in stores:
            await store.close()
