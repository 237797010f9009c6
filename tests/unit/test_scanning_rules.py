"""ECR's scanning rules as tables (ecr-api.md §9.2)."""

from __future__ import annotations

import pytest

from registry.metadata.models import Repository, RepositorySettings
from registry.scanning import (
    ScanningConfiguration, ScanRule, blocking_severity, blocks, filter_matches,
    repository_frequency,
)

NAMES = ["prod", "repo-prod", "prod-repo", "repo-prod-repo", "prodrepo"]
FILTER_TABLE = {  # the documented table, row by row
    "prod": "YYYYY", "*prod": "YYNNN", "prod*": "YNYNY", "*prod*": "YYYYY", "prod*repo": "NNYNY",
}


@pytest.mark.parametrize("pattern,expected", FILTER_TABLE.items())
def test_filter_semantics(pattern, expected):
    assert "".join("Y" if filter_matches(pattern, n) else "N" for n in NAMES) == expected


def repo(name: str, scan_on_push: bool = False) -> Repository:
    return Repository(1, "000000000000", name, 0.0, RepositorySettings(scan_on_push=scan_on_push))


CASES = [
    # scan type, rules, repository, scanOnPush flag, expected frequency
    ("BASIC", [], "app", False, "MANUAL"),
    ("BASIC", [], "app", True, "SCAN_ON_PUSH"),
    ("BASIC", [("SCAN_ON_PUSH", ["prod"])], "team/prod-api", False, "SCAN_ON_PUSH"),
    ("BASIC", [("SCAN_ON_PUSH", ["prod*"])], "team/prod-api", False, "MANUAL"),
    ("ENHANCED", [], "app", True, "MANUAL"),
    ("ENHANCED", [("SCAN_ON_PUSH", ["*"])], "app", False, "SCAN_ON_PUSH"),
    ("ENHANCED", [("SCAN_ON_PUSH", ["*"]), ("CONTINUOUS_SCAN", ["ap*"])], "app", False,
     "CONTINUOUS_SCAN"),
    ("ENHANCED", [("SCAN_ON_PUSH", ["*"]), ("CONTINUOUS_SCAN", ["ap*"])], "web", False,
     "SCAN_ON_PUSH"),
]


@pytest.mark.parametrize("scan_type,rules,name,flag,expected", CASES)
def test_repository_frequency(scan_type, rules, name, flag, expected):
    config = ScanningConfiguration(scan_type, tuple(ScanRule(f, tuple(p)) for f, p in rules))
    assert repository_frequency(config, repo(name, flag))[0] == expected


def test_configuration_round_trip():
    config = ScanningConfiguration("ENHANCED", (ScanRule("CONTINUOUS_SCAN", ("a*", "b")),))
    assert ScanningConfiguration.from_json(config.to_json()) == config


@pytest.mark.parametrize("tags,threshold", [
    ({}, None), ({"berth:block-pulls-at-severity": "high"}, "HIGH"),
    ({"berth:block-pulls-at-severity": "bogus"}, None),
])
def test_pull_protection_threshold(tags, threshold):
    assert blocking_severity(tags) == threshold


@pytest.mark.parametrize("threshold,counts,blocked", [
    ("HIGH", {"CRITICAL": 1}, "CRITICAL"), ("HIGH", {"HIGH": 2, "LOW": 3}, "HIGH"),
    ("HIGH", {"MEDIUM": 5}, None), ("LOW", {"LOW": 1}, "LOW"), ("CRITICAL", {"HIGH": 9}, None),
])
def test_pull_protection_levels(threshold, counts, blocked):
    assert blocks(threshold, counts) == blocked
