"""``berth fsck``: re-hash every blob, walk every tag's closure, report (and repair).

Safe while the server runs, on SQLite or PostgreSQL metadata: hashing only reads; the
metadata is read in one snapshot (writers are not blocked); a repair re-checks under the
blob's row lock that the file it moves is still the corrupt one (``repair.py``). Exit
status: 0 when nothing is wrong, 1 when problems were found (also after ``--repair``
quarantined them: the affected images stay broken until a client pushes the blobs again),
2 when there is no registry data.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import TextIO

from registry.config import Config
from registry.integrity.check import hash_all, list_blobs
from registry.integrity.closure import FILE_MISSING, missing, usage
from registry.integrity.progress import Progress, human_bytes
from registry.integrity.repair import quarantine_blob
from registry.metadata.integrity import IntegrityStore
from registry.metadata.factory import open_store
from registry.oci.digests import parse_digest
from registry.storage.base import BlobStore
from registry.storage.factory import open_blob_store


@dataclass
class Finding:
    problem: str  # "corrupt" or "missing"
    digest: str
    detail: str
    repositories: list[str]
    tags: list[str]
    size: int | None = None
    quarantined: str | None = None


@dataclass
class FsckReport:
    blobs_checked: int = 0
    bytes_checked: int = 0
    seconds: float = 0.0
    repair: bool = False
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "blobsChecked": self.blobs_checked,
                "bytesChecked": self.bytes_checked, "seconds": round(self.seconds, 3),
                "repair": self.repair,
                "corrupt": [asdict(f) for f in self.findings if f.problem == "corrupt"],
                "missing": [asdict(f) for f in self.findings if f.problem == "missing"]}


def run_fsck(metadata: IntegrityStore, blobs: BlobStore, *, repair: bool,
             progress_stream: TextIO | None = None, tty: bool | None = None) -> FsckReport:
    started = time.monotonic()
    checked_since = time.time()
    report = FsckReport(repair=repair)
    run = list_blobs(blobs)
    progress = Progress(run.total_bytes, progress_stream or sys.stderr, tty=tty)
    hash_all(blobs, run, on_bytes=progress.advance)
    progress.finish()
    report.blobs_checked, report.bytes_checked = run.checked, run.bytes
    snap = metadata.integrity_snapshot_sync()
    uses = usage(snap)
    for check in run.corrupt:
        digest = str(check.digest)
        use = uses.get(digest)
        finding = Finding("corrupt", digest, f"hashes to {check.digest.algorithm}:{check.actual}",
                          sorted(use.repositories) if use else [],
                          sorted(use.tags) if use else [], size=check.size)
        if repair:
            moved = quarantine_blob(metadata, blobs, check, now=time.time(),
                                    checked_since=checked_since)
            finding.quarantined = moved.path if moved else None
        report.findings.append(finding)
    corrupt = {f.digest for f in report.findings}
    gone = {d: why for d, why in missing(snap, _has_file(blobs, run.digests)).items()
            if d not in corrupt}
    recorded = metadata.recorded_blobs_sync(list(gone))
    for digest, why in sorted(gone.items()):
        if why == FILE_MISSING and (digest not in recorded or _stored(blobs, digest)):
            continue  # collected, or pushed again, since the snapshot
        use = uses.get(digest)
        report.findings.append(Finding("missing", digest, why,
                                       sorted(use.repositories) if use else [],
                                       sorted(use.tags) if use else []))
    report.seconds = time.monotonic() - started
    return report


def _stored(blobs: BlobStore, digest: str) -> bool:
    return blobs.blob_size(parse_digest(digest)) is not None


def _has_file(blobs: BlobStore, listed: set[str]):
    return lambda digest: digest in listed or _stored(blobs, digest)


def render_text(report: FsckReport, out: TextIO) -> None:
    for f in report.findings:
        size = f" ({human_bytes(f.size)})" if f.size is not None else ""
        out.write(f"{f.problem:8} {f.digest}{size}: {f.detail}\n")
        out.write(f"         repositories: {', '.join(f.repositories) or '(none)'}\n")
        out.write(f"         tags: {', '.join(f.tags) or '(none)'}\n")
        if f.quarantined:
            out.write(f"         quarantined to {f.quarantined}; clients can push it again\n")
        elif f.problem == "corrupt" and report.repair:
            out.write("         left alone: replaced or removed since it was hashed\n")
    corrupt = sum(f.problem == "corrupt" for f in report.findings)
    gone = len(report.findings) - corrupt
    out.write(f"checked {report.blobs_checked} blobs ({human_bytes(report.bytes_checked)}) in "
              f"{report.seconds:.1f} s: {corrupt} corrupt, {gone} missing\n")
    if corrupt and not report.repair:
        out.write("run `berth fsck --repair` to quarantine corrupt blobs so that clients push "
                  "them again\n")
    if gone:
        out.write("missing blobs come back when a client pushes the affected images again\n")


def main(config: Config, *, repair: bool, as_json: bool) -> int:
    if config.metadata.backend == "sqlite" and not config.metadata_path.is_file():
        print(f"berth fsck: no registry data in {config.data_dir}", file=sys.stderr)
        return 2
    metadata = open_store(config)
    try:
        blobs = open_blob_store(config)
        report = run_fsck(metadata, blobs, repair=repair)
    finally:
        metadata.db.close_sync()
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        render_text(report, sys.stdout)
    return 0 if report.ok else 1
