"""Issue 9's seam: no SQL and no database driver outside registry/metadata/.

Everything Berth persists goes through the metadata store protocol; a module elsewhere that
imports a driver or writes SQL is a second, untested backend in disguise.
"""

from __future__ import annotations

import re
import pytest

from tests.unit.sources import ROOT, sources_outside

STORE = ROOT / "registry" / "metadata"

# Files allowed to use a driver, with the reason. Nothing of Berth's own metadata is here.
ALLOWED = {
    "scanner/trivydb.py": "builds Trivy's own Java DB file (SQLite is Trivy's format)",
}

FORBIDDEN = [
    ("a database driver import", re.compile(r"^\s*(import|from)\s+(sqlite3|sqlalchemy|psycopg|alembic)\b", re.M)),
    ("an SQL statement", re.compile(r"[\"'](SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|CREATE TABLE)\b")),
    ("a raw connection call", re.compile(r"\bconn\.execute\(")),
]


@pytest.mark.parametrize("path", sources_outside(STORE), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_sql_outside_the_metadata_store(path):
    rel = str(path.relative_to(ROOT))
    if rel in ALLOWED:
        return
    text = path.read_text()
    found = [what for what, pattern in FORBIDDEN if pattern.search(text)]
    assert not found, f"{rel} has {', '.join(found)}: move it into registry/metadata/"
