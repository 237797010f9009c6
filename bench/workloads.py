"""The workloads: each one sets a fresh target up (untimed), then measures one thing.

Every measurement returns a dict with ``value`` (in the workload's unit, higher is better
unless the workload says otherwise) plus details for the JSON report. Throughput is decimal
MB/s (10^6 bytes per second), timed from the upload POST (or the GET) to the final response,
so it includes the server's hashing, fsync and rename. Request rates come from wrk.

Before each timed section the page cache's dirty data is flushed (``os.sync``), so one
target's unwritten bytes do not slow the next target's measurement.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from bench import ops, s3ceiling
from bench.cpusplit import CpuSplit
from bench.httpclient import Connection
from bench.payload import OCI_MANIFEST, BlobFile, SmallImage
from bench.procstat import io_bytes
from bench.sockbytes import SocketBytes
from bench.rss import RssSampler
from bench.targets import RunningTarget
from bench.wrk import run_wrk

REPO = "bench/app"
PUSH_REPO = "bench/small"
TAG = "latest"
MB = 1_000_000


@dataclass(frozen=True)
class Settings:
    blob_size: int
    chunk_size: int
    wrk_duration_s: int
    wrk_warmup_s: int = 1
    wrk_threads: int = 2
    wrk_connections: int = 64
    load_workers: int = 2
    small_blob_size: int = 1024
    pulls_per_round: int = 3
    push_images: int = 100
    push_clients: int = 4


@dataclass(frozen=True)
class Context:
    settings: Settings
    blob: BlobFile
    image: SmallImage
    images: tuple[SmallImage, ...] = ()


Measure = Callable[[RunningTarget, Context], dict]


@dataclass(frozen=True)
class Workload:
    """``workers``: the ``--workers`` Berth is started with (None: its default)."""

    name: str
    title: str
    unit: str
    kinds: frozenset[str]
    measure: Measure
    workers: int | None = None


def _settle() -> None:
    os.sync()


_DISK_PIECE = 4 * 1024 * 1024
_SYNC_FILE_RANGE_WRITE = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def start_writeback(fd: int, offset: int, length: int) -> None:
    _libc.sync_file_range(fd, ctypes.c_longlong(offset), ctypes.c_longlong(length),
                          ctypes.c_uint(_SYNC_FILE_RANGE_WRITE))


def measure_disk_write(target: RunningTarget, ctx: Context) -> dict:
    """Copy the blob file into the data dir in 4 MiB writes, starting writeback of each
    piece at once (sync_file_range), then fsync: no server, no network, no hashing. About
    the best a durable push can do on this disk."""
    _settle()
    path = os.path.join(target.data_dir, "blob")
    start = time.perf_counter()
    with open(ctx.blob.path, "rb", buffering=0) as source, \
            open(path, "wb", buffering=0) as out:
        piece, offset = memoryview(bytearray(_DISK_PIECE)), 0
        while got := source.readinto(piece):
            out.write(piece[:got])
            start_writeback(out.fileno(), offset, got)
            offset += got
        os.fsync(out.fileno())
    seconds = time.perf_counter() - start
    return {"value": ctx.blob.size / MB / seconds, "seconds": seconds}


def measure_push_mono(target: RunningTarget, ctx: Context) -> dict:
    if target.spec.kind == "disk":
        return measure_disk_write(target, ctx)
    if target.spec.kind == "s3":
        return s3ceiling.measure_push(target, ctx.blob)
    _settle()
    with target.connect() as conn, RssSampler(target.pids) as sampler:
        start = time.perf_counter()
        response = ops.push_blob_monolithic(conn, REPO, ctx.blob)
        seconds = time.perf_counter() - start
    return {"value": ctx.blob.size / MB / seconds, "seconds": seconds,
            "finish_seconds": response.head_at - response.sent_at, "rss": sampler.result()}


def measure_push_chunked(target: RunningTarget, ctx: Context) -> dict:
    if target.spec.kind == "disk":
        return measure_disk_write(target, ctx)
    if target.spec.name == "s3-serial":
        return s3ceiling.measure_serial_parts(target, ctx.blob, ctx.settings.chunk_size)
    if target.spec.kind == "s3":
        return s3ceiling.measure_push(target, ctx.blob)
    _settle()
    with target.connect() as conn, RssSampler(target.pids) as sampler:
        start = time.perf_counter()
        response = ops.push_blob_chunked(conn, REPO, ctx.blob, ctx.settings.chunk_size)
        seconds = time.perf_counter() - start
    return {"value": ctx.blob.size / MB / seconds, "seconds": seconds,
            "finish_seconds": response.head_at - response.sent_at, "rss": sampler.result(),
            "chunks": -(-ctx.blob.size // ctx.settings.chunk_size)}


def server_bytes(sockets: SocketBytes, before: dict[int, tuple[int, int]],
                 after: dict[int, tuple[int, int]], pulls: int, blob_size: int) -> dict:
    """What passed through the server during the pulls: TCP bytes its processes sent and
    received (every socket: clients, S3, the database), and the larger of the two per pull
    as a percentage of the blob — a blob that passes through is received (from S3) or read
    from disk, and sent to the client, once per pull, so this is ~100 % when it does. Also
    the read/write system-call bytes of ``/proc/<pid>/io`` (files, and sockets written with
    write or sendfile; not send/recv)."""
    sent, received = sockets.totals()
    per_pull = max(sent, received) / max(pulls, 1)
    read = sum(r - before.get(pid, (0, 0))[0] for pid, (r, _) in after.items())
    written = sum(w - before.get(pid, (0, 0))[1] for pid, (_, w) in after.items())
    return {"tcp_sent": sent, "tcp_received": received, "io_read": read,
            "io_written": written, "per_pull": per_pull,
            "pct_of_blob": round(per_pull / blob_size * 100, 4)}


def measure_pull(target: RunningTarget, ctx: Context) -> dict:
    """Push the blob (untimed), then GET it ``pulls_per_round`` times, each on a new
    connection, following a redirect (berth-s3 answers 307 to a presigned URL). Around the
    pulls the server's byte counters are read, and its sockets' counters once more at the
    end of each pull, before the client closes (untimed): the bytes that passed through it."""
    pulls = ctx.settings.pulls_per_round
    if target.spec.kind == "s3":
        return s3ceiling.measure_pull(target, ctx.blob, pulls)
    with target.connect() as conn:
        ops.push_blob_monolithic(conn, REPO, ctx.blob)
    _settle()
    rates, redirects = [], []
    sockets = SocketBytes(target.pids)
    sockets.baseline()
    before = io_bytes(target.pids())
    for _ in range(pulls):
        with target.connect() as conn:
            start = time.perf_counter()
            response = ops.pull_blob(conn, REPO, ctx.blob.digest, ctx.blob.size)
            rates.append(ctx.blob.size / MB / (time.perf_counter() - start))
            sockets.snapshot()  # the server's side of this connection closes with it
        redirects = response.redirects
    sockets.snapshot()
    moved = server_bytes(sockets, before, io_bytes(target.pids()), pulls, ctx.blob.size)
    return {"value": statistics.median(rates), "pulls": rates, "server_bytes": moved,
            "redirects": redirects}


def _measure_wrk(target: RunningTarget, ctx: Context, path: str,
                 headers: dict[str, str]) -> dict:
    with target.connect() as conn:
        ops.push_small_image(conn, REPO, ctx.image, TAG)
    _settle()
    s = ctx.settings
    all_headers = {**target.headers, **headers}
    if s.wrk_warmup_s:
        run_wrk(target.url + path, threads=s.wrk_threads, connections=s.wrk_connections,
                duration_s=s.wrk_warmup_s, headers=all_headers)
    split = CpuSplit(target.cpu_parts)
    split.start()
    result = run_wrk(target.url + path, threads=s.wrk_threads, connections=s.wrk_connections,
                     duration_s=s.wrk_duration_s, headers=all_headers)
    return {"value": result.requests_per_sec, "requests": result.requests,
            "latency_avg": result.latency_avg, "latency_p99": result.latency_p99,
            "socket_errors": result.socket_errors, "cpu_split": split.stop()}


def measure_manifest_get(target: RunningTarget, ctx: Context) -> dict:
    return _measure_wrk(target, ctx, f"/v2/{REPO}/manifests/{TAG}", {"Accept": OCI_MANIFEST})


def measure_blob_get(target: RunningTarget, ctx: Context) -> dict:
    return _measure_wrk(target, ctx, f"/v2/{REPO}/blobs/{ctx.image.layer_digest}", {})


def _push_share(conn: Connection, images: tuple[SmallImage, ...], tags: list[str]) -> None:
    for image, tag in zip(images, tags):
        ops.push_image(conn, PUSH_REPO, image, tag)


def measure_push_small(target: RunningTarget, ctx: Context) -> dict:
    """Push ``push_images`` distinct small images into one repository, each under its own
    tag, from ``push_clients`` clients at once (threads, one keep-alive connection each;
    client i pushes images i, i + clients, ...). Timed from the first request to the last
    manifest's 201; then, untimed, every manifest is read back by tag and compared."""
    clients, images = ctx.settings.push_clients, ctx.images
    tags = [f"v{i:03d}" for i in range(len(images))]
    conns = [target.connect(timeout=60) for _ in range(clients)]
    try:
        _settle()
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            shares = [pool.submit(_push_share, conns[i], images[i::clients], tags[i::clients])
                      for i in range(clients)]
            for share in shares:
                share.result()
        seconds = time.perf_counter() - start
        for image, tag in zip(images, tags):
            ops.check_manifest(conns[0], PUSH_REPO, image, tag)
    finally:
        for conn in conns:
            conn.close()
    return {"value": len(images) / seconds, "seconds": seconds, "images": len(images),
            "clients": clients, "requests": 5 * len(images)}


_REGISTRIES = frozenset({"berth", "distribution"})
_STREAMING = _REGISTRIES | {"null", "s3"}
_PUSH = _STREAMING | {"disk"}

WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    # Issue 10: the streaming workloads with --workers 2, as the server's example config.
    Workload("push-mono", "blob push, monolithic (POST + PUT ?digest=)", "MB/s",
             _PUSH, measure_push_mono, workers=2),
    Workload("push-chunked", "blob push, chunked (POST + PATCH per chunk + PUT)", "MB/s",
             _PUSH, measure_push_chunked, workers=2),
    Workload("pull", "blob pull (GET, read and discard)", "MB/s", _STREAMING, measure_pull,
             workers=2),
    Workload("manifest-get", "manifest GET by tag, wrk 64 connections", "req/s",
             _REGISTRIES, measure_manifest_get, workers=2),
    Workload("blob-get", "small blob GET, wrk 64 connections", "req/s",
             _REGISTRIES, measure_blob_get, workers=2),
    Workload("push-small", "100 small images pushed (blobs + manifest by tag), 4 clients",
             "images/s", _REGISTRIES, measure_push_small, workers=2),
)}

# Derived rows: computed from another workload's samples rather than measured on their own.
DERIVED = {"rss": "push-mono", "pull-bytes": "pull"}
