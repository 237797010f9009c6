"""Fixture Trivy DBs written in Python with the PyPI ``boltdb`` package (scanning.md §5).

``write_trivy_db(dest, buckets)`` writes ``dest/trivy.db`` and ``dest/metadata.json`` from a
dict laid out like Trivy's schema-2 buckets::

    {
      "debian 12": {"openssl": {"CVE-2025-1": {"FixedVersion": "3.0.17-1~deb12u2"}}},
      "pip::GitHub Security Advisory Pip": {
          "werkzeug": {"CVE-2019-14806": {"VulnerableVersions": ["< 0.15.3"],
                                          "PatchedVersions": ["0.15.3"]}}},
      "vulnerability": {"CVE-2019-14806": {"Severity": "HIGH", "CVSS": {...}}},
      "data-source": {"debian 12": {"ID": "debian", "Name": "…", "URL": "…"}},
    }

Every top-level bucket except the flat ones (``vulnerability``, ``data-source``) holds one
nested bucket per package whose keys are advisory ids. Values are encoded as Go would:
integral floats become ints (else Trivy silently drops the severity, §5.2-2) and datetimes
become RFC 3339 with a ``T`` (§5.2-3). The meta-page checksum boltdb 0.0.2 leaves at zero is
fixed after writing (§5.2-1), and ``NextUpdate`` is far in the future (§2.8).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from scanner.trivydb import fnv1a64

FLAT_BUCKETS = frozenset({"vulnerability", "data-source"})
FAR_FUTURE = datetime(2999, 1, 1, tzinfo=timezone.utc)

DEBIAN_SOURCE = {"ID": "debian", "Name": "Debian Security Tracker",
                 "URL": "https://salsa.debian.org/security-tracker-team/security-tracker"}
GHSA_PIP_SOURCE = {"ID": "ghsa", "Name": "GitHub Security Advisory pip",
                   "URL": "https://github.com/advisories?query=type%3Areviewed+ecosystem%3Apip"}


def write_trivy_db(dest: Path, buckets: Mapping[str, Mapping[str, Any]], *,
                   updated_at: datetime) -> Path:
    """Write ``trivy.db`` and ``metadata.json`` into ``dest`` (created) and return ``dest``."""
    from boltdb import BoltDB  # test-only dependency; imported where it is needed

    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "trivy.db"
    path.unlink(missing_ok=True)
    db = BoltDB(str(path))
    try:
        with db.update() as tx:
            # Trivy 0.76 dereferences the `vulnerability` bucket without a nil check: a DB
            # without it makes every scan that finds something panic. Always create both.
            buckets = {"vulnerability": {}, "data-source": {}, **buckets}
            for name in sorted(buckets):
                bucket = tx.create_bucket(name.encode())
                if name in FLAT_BUCKETS:
                    _put_all(bucket, buckets[name])
                    continue
                for package in sorted(buckets[name]):
                    _put_all(bucket.create_bucket(package.encode()), buckets[name][package])
    finally:
        db.close()
        db.close = lambda: None  # boltdb's __del__ closes again and raises (§5.2-4)
    _fix_meta_checksums(path)
    metadata = {"Version": 2, "NextUpdate": _rfc3339(FAR_FUTURE),
                "UpdatedAt": _rfc3339(updated_at), "DownloadedAt": _rfc3339(updated_at)}
    (dest / "metadata.json").write_text(json.dumps(metadata))
    return dest


def go_json(value: Any) -> bytes:
    """Compact JSON with integral floats as ints and datetimes in RFC 3339, as Go writes."""
    return json.dumps(_go_value(value), separators=(",", ":"), sort_keys=True).encode()


def _put_all(bucket: Any, pairs: Mapping[str, Any]) -> None:
    for key in sorted(pairs):
        bucket.put(key.encode(), go_json(pairs[key]))


def _go_value(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, datetime):
        return _rfc3339(value)
    if isinstance(value, Mapping):
        return {str(k): _go_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_go_value(v) for v in value]
    return value


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("fixture times must be timezone-aware")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fix_meta_checksums(path: Path) -> None:
    """bbolt refuses a meta page whose checksum (FNV-1a over its first 56 bytes) is wrong;
    boltdb 0.0.2 writes 0 there."""
    data = bytearray(path.read_bytes())
    page_size = struct.unpack_from("<I", data, 24)[0]
    for page in (0, 1):
        offset = page * page_size + 16
        struct.pack_into("<Q", data, offset + 56, fnv1a64(bytes(data[offset:offset + 56])))
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
