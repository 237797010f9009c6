"""Berth's own Python modules, for the tests that guard its seams."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("registry", "scanner", "policies", "replication", "ecs", "console")


def sources_outside(package_dir: Path) -> list[Path]:
    """Every module of Berth's packages that is not under ``package_dir``."""
    files = []
    for package in PACKAGES:
        base = ROOT / package
        if base.is_dir():
            files += [p for p in base.rglob("*.py") if package_dir not in p.parents]
    return sorted(files)
