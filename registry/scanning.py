"""ECR's scanning configuration: registry rules, repository filters, what to scan when.

Pure rules plus two small storage helpers; the scanner package does the scanning. Filter
semantics (ecr-api.md §9.2): a filter without ``*`` matches any repository name containing
it; with ``*`` (any run of characters) it is anchored at both ends.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

from registry.appkeys import JOBS_QUEUED
from registry.metadata.models import ManifestRecord, Repository
from registry.metadata.writes import NewJob, RequestScan, Write
from registry.oci.manifests import INDEX_TYPES

SETTING = "SCANNING_CONFIGURATION"
SCAN_JOB = "scan.image"
PUSH_PRIORITY = 10  # scans triggered by a push go ahead of bulk rescans (priority 0)
RESCAN_PRIORITY = 0
MANUAL_PRIORITY = 5
BASIC_INTERVAL = 24 * 3600  # ECR: one basic scan per image per 24 hours

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")
PULL_PROTECTION_TAG = "berth:block-pulls-at-severity"


@dataclass(frozen=True)
class ScanRule:
    frequency: str  # SCAN_ON_PUSH | CONTINUOUS_SCAN | MANUAL
    filters: tuple[str, ...]


@dataclass(frozen=True)
class ScanningConfiguration:
    scan_type: str = "BASIC"
    rules: tuple[ScanRule, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {"scanType": self.scan_type, "rules": [
            {"scanFrequency": r.frequency,
             "repositoryFilters": [{"filter": f, "filterType": "WILDCARD"} for f in r.filters]}
            for r in self.rules]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ScanningConfiguration":
        return cls(data.get("scanType", "BASIC"), tuple(
            ScanRule(r["scanFrequency"], tuple(f["filter"] for f in r.get("repositoryFilters", [])))
            for r in data.get("rules", [])))


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern))


def filter_matches(pattern: str, name: str) -> bool:
    if "*" not in pattern:
        return pattern in name
    return _glob(pattern).fullmatch(name) is not None


def repository_frequency(config: ScanningConfiguration,
                         repo: Repository) -> tuple[str, tuple[str, ...]]:
    """The effective scan frequency of a repository and the filters that gave it."""
    matched: dict[str, tuple[str, ...]] = {}
    for rule in config.rules:
        hits = tuple(f for f in rule.filters if filter_matches(f, repo.name))
        if hits:
            matched[rule.frequency] = hits
    if config.scan_type == "ENHANCED":
        for frequency in ("CONTINUOUS_SCAN", "SCAN_ON_PUSH"):  # continuous wins (§9.2)
            if frequency in matched:
                return frequency, matched[frequency]
        return "MANUAL", ()
    if "SCAN_ON_PUSH" in matched:
        return "SCAN_ON_PUSH", matched["SCAN_ON_PUSH"]
    if repo.settings.scan_on_push:  # the deprecated repository-level switch still counts
        return "SCAN_ON_PUSH", ()
    return "MANUAL", ()


def scans_on_push(config: ScanningConfiguration, repo: Repository) -> bool:
    return repository_frequency(config, repo)[0] in ("SCAN_ON_PUSH", "CONTINUOUS_SCAN")


async def load_configuration(metadata, account: str) -> ScanningConfiguration:
    text = await metadata.get_setting(account, SETTING)
    return ScanningConfiguration.from_json(json.loads(text)) if text else ScanningConfiguration()


async def save_configuration(metadata, account: str, config: ScanningConfiguration) -> None:
    await metadata.put_setting(account, SETTING, json.dumps(config.to_json()))


def blocking_severity(tags: dict[str, str]) -> str | None:
    """Harbor-style pull protection, set as a repository tag (TagResource)."""
    value = tags.get(PULL_PROTECTION_TAG, "").upper()
    return value if value in SEVERITIES[:4] else None


def blocks(threshold: str, counts: dict[str, int]) -> str | None:
    """The most severe level at or above ``threshold`` that has findings, if any."""
    for level in SEVERITIES[:SEVERITIES.index(threshold) + 1]:
        if counts.get(level):
            return level
    return None


IMAGE_CONFIG_TYPES = frozenset({"application/vnd.oci.image.config.v1+json",
                                "application/vnd.docker.container.image.v1+json"})


def announce_jobs(app) -> None:
    """Tell this process's workers that a request just queued jobs."""
    for notify in app.get(JOBS_QUEUED, ()):
        notify()


def is_scannable(record: ManifestRecord) -> bool:
    """Images and image indexes; artifacts (SBOMs, signatures, …) are not scanned."""
    if record.media_type in INDEX_TYPES:
        return record.artifact_type is None
    return record.artifact_type in IMAGE_CONFIG_TYPES


def scan_request(repo: Repository, digest: str, *, scan_type: str, reason: str,
                 priority: int, idempotency_key: str | None = None) -> RequestScan:
    """The write that requests a scan of ``digest`` and queues its job."""
    payload = {"account": repo.account, "repository": repo.name, "digest": digest,
               "scanType": scan_type, "reason": reason}
    return RequestScan(repo.id, digest, NewJob(SCAN_JOB, payload, priority=priority,
                                               idempotency_key=idempotency_key),
                       scan_type=scan_type)


async def push_hook(metadata, repo: Repository
                    ) -> Callable[[ManifestRecord], list[Write]] | None:
    """The writes that go into a pushed manifest's transaction: a scan request when the
    registry's rules (or the repository's scanOnPush) say to scan it on push. None when
    nothing pushed to ``repo`` is scanned on push; the hook gives [] for an artifact that is
    not scannable."""
    config = await load_configuration(metadata, repo.account)
    if not scans_on_push(config, repo):
        return None

    def hook(record: ManifestRecord) -> list[Write]:
        if not is_scannable(record):
            return []
        return [scan_request(repo, record.digest, scan_type=config.scan_type, reason="push",
                             priority=PUSH_PRIORITY)]

    return hook
