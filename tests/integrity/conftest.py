"""Servers and helpers for the integrity tests: auth off (the OCI paths are under test)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import pytest

from tests.support.images import Image, Platform, image_index, random_layer
from tests.support.oci_client import OciClient
from tests.support.server import BerthServer

AUTH_OFF = {"BERTH_AUTH__ENABLED": "false"}


@pytest.fixture
def server(tmp_path):
    with BerthServer(tmp_path / "berth", env=AUTH_OFF) as server:
        yield server


@pytest.fixture
def oci(server) -> OciClient:
    return OciClient(server.url)


@dataclass
class Fsck:
    code: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict:
        return json.loads(self.stdout)


def fsck(server: BerthServer, *args: str) -> Fsck:
    """Run `berth fsck` against a server's data directory, the server still running."""
    done = subprocess.run([sys.executable, "-m", "registry", "fsck", "--data",
                           str(server.data_dir), *args], capture_output=True, text=True,
                          timeout=120)
    return Fsck(done.returncode, done.stdout, done.stderr)


def two_platform_index(seed: str):
    """An index over two images; the big layer (1 MiB, served by sendfile) is shared."""
    big = random_layer(f"{seed}-big", 1024 * 1024, path="big.bin")
    amd64 = Image.build([big, random_layer(f"{seed}-amd64", 4096)],
                        platform=Platform(architecture="amd64"))
    arm64 = Image.build([big, random_layer(f"{seed}-arm64", 4096)],
                        platform=Platform(architecture="arm64", variant="v8"))
    return big, (amd64, arm64), image_index((amd64, arm64))


@pytest.fixture
def app_config(tmp_path):
    from registry.config import load_config

    return load_config(environ={}, overrides={"data_dir": str(tmp_path / "data"),
                                              "gc.enabled": False, "auth.enabled": False})


@pytest.fixture
def make_client(aiohttp_client, app_config):
    """Factory: an in-process server on the data directory; each call is a new "process"
    (its own small-blob cache and metrics)."""
    from registry.app import create_app
    from registry.metrics import Metrics

    async def make(**overrides):
        return await aiohttp_client(create_app(app_config, metrics=Metrics(), **overrides))

    return make


def metric(client, name: str, **labels: str) -> float:
    """A sample's value from the app's /metrics rendering (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    from registry.appkeys import METRICS

    text = client.app[METRICS].render().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0
