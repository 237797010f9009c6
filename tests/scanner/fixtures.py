"""Advisories and images the scanner tests share: real packages, fixture DB buckets.

Language advisory ranges are the published ones (GitHub/PyPA advisories); the
``vulnerability`` entry for CVE-2019-14806 is copied from Trivy's own integration fixtures
(aquasecurity/trivy ``integration/testdata/fixtures/db/vulnerability.yaml``, Apache-2.0).
Advisories without a ``vulnerability`` entry come out with severity UNKNOWN, as in Trivy.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from tests.support import debian
from tests.support.images import TarEntry, tar_layer
from tests.support.trivydb import DEBIAN_SOURCE, GHSA_PIP_SOURCE

UPDATED_AT = datetime(2026, 11, 1, 6, 0, tzinfo=timezone.utc)
PIP = "pip::GitHub Security Advisory Pip"
NPM = "npm::GitHub Security Advisory npm"
WHEELS = ("werkzeug==0.15.2", "urllib3==1.26.4", "jinja2==2.10")
# On top of minbase: openssl, expat, python3.11 and curl's libraries all have bookworm-security
# updates, so the image has real findings (about 120 packages, 200 MB).
BOOKWORM_PACKAGES = ("openssl", "ca-certificates", "libexpat1", "curl", "python3-minimal")


def pip(vulnerable: str, patched: str | None) -> dict:
    advisory: dict = {"VulnerableVersions": [vulnerable]}
    if patched:
        advisory["PatchedVersions"] = [patched]
    return advisory


PIP_ADVISORIES = {
    "werkzeug": {
        "CVE-2019-14806": pip("< 0.15.3", "0.15.3"),
        "CVE-2020-28724": pip("< 0.11.6", "0.11.6"),  # older than 0.15.2: must not match
        "CVE-2023-25577": pip("< 2.2.3", "2.2.3"),
    },
    "jinja2": {"CVE-2019-10906": pip("< 2.10.1", "2.10.1")},
    "urllib3": {
        "CVE-2021-33503": pip("< 1.26.5", "1.26.5"),
        "CVE-2023-43804": pip("< 1.26.17", "1.26.17"),
    },
    "setuptools": {"CVE-2022-40897": pip("< 65.5.1", "65.5.1")},
}
NPM_ADVISORIES = {
    "lodash": {"CVE-2019-10744": pip("< 4.17.12", "4.17.12")},
    "jquery": {"CVE-2019-11358": pip("< 3.4.0", "3.4.0")},
}
# Expected (id, package, installed version) for the three real wheels.
WHEEL_FINDINGS = {
    ("CVE-2019-14806", "Werkzeug", "0.15.2"), ("CVE-2023-25577", "Werkzeug", "0.15.2"),
    ("CVE-2019-10906", "Jinja2", "2.10"),
    ("CVE-2021-33503", "urllib3", "1.26.4"), ("CVE-2023-43804", "urllib3", "1.26.4"),
}
VULNERABILITIES = {
    "CVE-2019-14806": {
        "Title": "python-werkzeug: insufficient debugger PIN randomness vulnerability",
        "Description": "Pallets Werkzeug before 0.15.3, when used with Docker, has "
                       "insufficient debugger PIN randomness because Docker containers share "
                       "the same machine id.",
        "Severity": "HIGH",
        "VendorSeverity": {"ghsa": 3.0, "nvd": 3.0, "redhat": 2.0, "ubuntu": 1.0},
        "CVSS": {"nvd": {"V2Score": 5.0, "V2Vector": "AV:N/AC:L/Au:N/C:P/I:N/A:N",
                         "V3Score": 7.5,
                         "V3Vector": "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"},
                 "redhat": {"V3Score": 7.5,
                            "V3Vector": "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}},
        "CweIDs": ["CWE-331"],
        "References": ["https://github.com/advisories/GHSA-gq9m-qvpx-68hc",
                       "https://nvd.nist.gov/vuln/detail/CVE-2019-14806"],
        "PublishedDate": datetime(2019, 8, 9, 15, 15, tzinfo=timezone.utc),
        "LastModifiedDate": datetime(2019, 9, 11, 0, 15, tzinfo=timezone.utc),
    },
}
# A two-package Debian for the mixed image: one fixed and one unfixed advisory. Synthetic
# versions (real ones come from tests/support/debian.py in the bookworm test).
DEBIAN_ADVISORIES = {
    "openssl": {"CVE-2024-13176": {"FixedVersion": "3.0.15-1~deb12u2"},
                "CVE-2024-2511": {"Status": 5, "Severity": 1}},  # will_not_fix, LOW
}
DPKG_STATUS = b"""\
Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.15-1~deb12u1

Package: openssl
Status: install ok installed
Architecture: amd64
Version: 3.0.15-1~deb12u1
"""


def buckets(*, debian_12: dict | None = None, pip_advisories: dict | None = None) -> dict:
    """Fixture DB buckets: the language advisories above plus ``debian_12`` ones."""
    result = {
        PIP: PIP_ADVISORIES if pip_advisories is None else pip_advisories,
        NPM: NPM_ADVISORIES,
        "vulnerability": VULNERABILITIES,
        "data-source": {PIP: GHSA_PIP_SOURCE, "debian 12": DEBIAN_SOURCE},
    }
    if debian_12:
        result["debian 12"] = debian_12
    return result


def wheel_layer():
    entries = [TarEntry(path, is_dir=True) for path in _parents(debian.SITE_PACKAGES)]
    for wheel in debian.wheels(*WHEELS):
        entries += debian.wheel_entries(wheel)
    return tar_layer(entries)


def debian_files_layer(status: bytes = DPKG_STATUS):
    return tar_layer([
        TarEntry("etc", is_dir=True),
        TarEntry("etc/os-release", data=b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
                                        b'ID=debian\nVERSION_ID="12"\n'),
        TarEntry("etc/debian_version", data=b"12.8\n"),
        *(TarEntry(p, is_dir=True) for p in ("var", "var/lib", "var/lib/dpkg")),
        TarEntry("var/lib/dpkg/status", data=status),
    ])


def whiteout_layers():
    """scanning.md §6.1: layer 2 adds Werkzeug, setuptools and jquery 2.2.4; layer 3 deletes
    setuptools (``.wh.``) and hides the old jquery (``.wh..wh..opq``) under jquery 3.5.0."""
    site = debian.SITE_PACKAGES
    werkzeug = next(w for w in debian.wheels(*WHEELS) if w.name.startswith("Werkzeug"))
    base = tar_layer([*(TarEntry(p, is_dir=True) for p in _parents("app/node_modules/x")),
                      debian.npm_package("lodash", "4.17.4")])
    adds = tar_layer([*(TarEntry(p, is_dir=True) for p in _parents(site)),
                      *debian.wheel_entries(werkzeug),
                      debian.dist_info("setuptools", "60.0.0"),
                      debian.npm_package("jquery", "2.2.4"),
                      TarEntry("app/node_modules/jquery/dist/jquery.js", data=b"/* 2.2.4 */")])
    deletes = tar_layer([
        TarEntry(f"{site}/.wh.setuptools-60.0.0.dist-info"),
        TarEntry("app/node_modules/jquery/.wh..wh..opq"),
        debian.npm_package("jquery", "3.5.0"),
    ])
    return [base, adds, deletes]


def _parents(path: str) -> list[str]:
    parts = Path(path).parts
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
