"""Two Berth nodes, run as containers of the image, sharing PostgreSQL and Ceph RGW behind
nginx, configured with the README's files (deploy/berth-node.toml mounted as the node's
config, deploy/nginx-berth.conf as nginx's site) and only the addresses changed.

Each node keeps nothing of its own: pushes through nginx land anywhere, a chunked upload
continues on the other node, a node killed with -9 mid-push costs the client one retry,
GC on one node while the other takes pushes deletes nothing referenced, and a scan of an
image pushed to node 1 is done by node 2.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest
import requests

from tests.container.conftest import REPO_ROOT, _container_factory
from tests.support.images import Image, random_layer, write_docker_context
from tests.support.oci_client import OciClient, expect
from tests.support.server import LoopbackAddress, free_port

NODE_UID = 10001  # the image's berth user: mounted secrets must be readable by it
DEPLOY = REPO_ROOT / "deploy"


def _private_copy(data: bytes, path: Path) -> Path:
    path.write_bytes(data)
    os.chmod(path, 0o600)
    os.chown(path, NODE_UID, NODE_UID)
    return path


class Nginx(LoopbackAddress):
    """nginx from Debian with deploy/nginx-berth.conf as its only site."""

    def __init__(self, directory: Path, nodes: list[str]) -> None:
        self.directory = directory
        self.port = free_port()
        site = (DEPLOY / "nginx-berth.conf").read_text()
        servers = re.findall(r"^\s*server 10\.0\.0\.\d+:5000 .*$", site, re.MULTILINE)
        assert len(servers) == len(nodes)
        for line, node in zip(servers, nodes):
            site = site.replace(line, re.sub(r"10\.0\.0\.\d+:5000", node, line))
        site = site.replace("listen 80;", f"listen 127.0.0.1:{self.port};")
        (directory / "berth.conf").write_text(site)
        (directory / "nginx.conf").write_text(
            f"daemon off;\nuser root;\nworker_processes 2;\npid {directory}/nginx.pid;\n"
            f"error_log {directory}/error.log warn;\nevents {{ worker_connections 1024; }}\n"
            f"http {{\n  access_log off;\n  client_body_temp_path {directory}/body;\n"
            f"  proxy_temp_path {directory}/proxy;\n  include {directory}/berth.conf;\n}}\n")
        self.process = subprocess.Popen(["nginx", "-c", str(directory / "nginx.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(self.url + "/healthz", timeout=2)
                return
            except requests.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("nginx did not start: "
                                         + self.process.stderr.read().decode()[-2000:])
                time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def cluster(docker, berth_image, postgres, rgw, tmp_path_factory):
    secrets = tmp_path_factory.mktemp("secrets")
    os.chmod(secrets, 0o755)
    key = _private_copy(os.urandom(32), secrets / "master.key")
    credentials = _private_copy(
        f"[berth]\naws_access_key_id = {rgw.access_key}\n"
        f"aws_secret_access_key = {rgw.secret_key}\n".encode(), secrets / "aws-credentials")
    bucket = rgw.create_bucket(f"berth-deploy-{uuid.uuid4().hex[:12]}")
    url = postgres.create_database("deploy")
    env = {"BERTH_METADATA__URL": url, "BERTH_STORAGE__BUCKET": bucket,
           "BERTH_STORAGE__ENDPOINT_URL": rgw.endpoint_url,
           "BERTH_AUTH__ENABLED": "false", "BERTH_SERVER__WORKERS": "1"}
    volumes = [f"{DEPLOY / 'berth-node.toml'}:/etc/berth/berth.toml:ro",
               f"{key}:/etc/berth/master.key:ro",
               f"{credentials}:/etc/berth/aws-credentials:ro"]
    start, remove_all = _container_factory(docker, berth_image)
    nginx = None
    try:
        # Node 2 alone runs scans (node 1 never claims a scan job), so a scan of an image
        # pushed to node 1 can only be done by node 2.
        nodes = [start(env={**env, "BERTH_SCANNER__ENABLED": "false"}, volumes=volumes),
                 start(env=env, volumes=volumes)]
        for node in nodes:
            node.wait_healthy()
        nginx = Nginx(tmp_path_factory.mktemp("nginx"), [n.host for n in nodes])
        yield nodes, nginx, bucket
    finally:
        if nginx is not None:
            nginx.stop()
        remove_all()
        rgw.delete_bucket(bucket)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_docker_pushes_and_pulls_through_nginx(cluster, docker, busybox, tmp_path):
    nodes, nginx, _ = cluster
    context = write_docker_context(tmp_path / "ctx", busybox=busybox, message="behind nginx")
    ref = f"{nginx.host}/deploy/hello:v1"
    try:
        docker("build", "--quiet", "--tag", ref, str(context))
        docker("push", ref)
        docker("rmi", "--force", ref)
        docker("pull", ref)
        assert "behind nginx" in docker("run", "--rm", "--network", "none", ref).stdout
        for node in nodes:  # both nodes see the image
            assert OciClient(node.url).tags("deploy/hello") == ["v1"]
    finally:
        docker("rmi", "--force", ref, check=False)


def test_a_chunked_upload_alternates_between_the_nodes(cluster):
    nodes, _, _ = cluster
    clients = [OciClient(node.url) for node in nodes]
    data = os.urandom(12 * 1024 * 1024 + 1)
    upload = clients[0].start_upload("deploy/chunked")
    for n, start in enumerate(range(0, len(data), 3 * 1024 * 1024)):
        expect(clients[n % 2].patch(upload, data[start:start + 3 * 1024 * 1024]), 202)
    expect(clients[1].finish_upload(upload, _digest(data)), 201)
    assert clients[0].blob_sha256("deploy/chunked", _digest(data)) == (_digest(data),
                                                                         len(data))


def test_a_node_killed_mid_push_costs_the_client_a_retry(cluster, docker):
    """Four clients push chunked blobs through nginx (least_conn spreads their requests
    over both nodes); node 1 is killed with -9 while they do. A client whose request died
    with it retries the blob through nginx, which now only has node 2."""
    from concurrent.futures import ThreadPoolExecutor

    nodes, nginx, _ = cluster
    blobs = [os.urandom(6 * 1024 * 1024) for _ in range(4)]
    started = threading.Event()
    retries = []

    def push(data: bytes) -> None:
        client = OciClient(nginx.url)
        for attempt in range(5):
            try:
                upload = client.start_upload("deploy/killed")
                for offset in range(0, len(data), 512 * 1024):
                    expect(client.patch(upload, data[offset:offset + 512 * 1024]), 202)
                    started.set()
                expect(client.finish_upload(upload, _digest(data)), 201)
                return
            except (AssertionError, requests.RequestException):
                retries.append(attempt)
                time.sleep(0.5)
        raise AssertionError("the push never completed through the surviving node")

    try:
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(push, data) for data in blobs]
            assert started.wait(60)
            time.sleep(0.5)
            docker("kill", "--signal", "KILL", nodes[0].name)
            for future in futures:
                future.result(timeout=300)
        served = docker("logs", nodes[0].name, check=False)
        assert "/v2/deploy/killed/blobs/uploads/" in served.stdout + served.stderr
        survivor = OciClient(nodes[1].url)
        for data in blobs:
            assert survivor.blob_sha256("deploy/killed", _digest(data)) == (_digest(data),
                                                                             len(data))
    finally:
        docker("start", nodes[0].name)
        nodes[0].wait_healthy()


def test_gc_on_node_1_while_node_2_takes_pushes_deletes_nothing_referenced(cluster, docker,
                                                                          rgw):
    nodes, _, bucket = cluster
    one, two = (OciClient(node.url) for node in nodes)
    garbage = Image.build([random_layer("deploy-garbage", 8192)])
    one.push_image("deploy/gc", "garbage", garbage)
    ecr = boto3.client("ecr", endpoint_url=nodes[0].url, region_name="us-east-1",
                       aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="x")
    ecr.batch_delete_image(repositoryName="deploy/gc", imageIds=[{"imageTag": "garbage"}])
    time.sleep(3)  # older than the grace window below
    pushed, stop = [], threading.Event()

    def push_loop() -> None:
        n = 0
        while not stop.is_set():
            image = Image.build([random_layer(f"deploy-gc-{n}", 8192)])
            two.push_image("deploy/gc", f"v{n}", image)
            pushed.append((f"v{n}", image))
            n += 1

    pusher = threading.Thread(target=push_loop)
    pusher.start()
    try:
        time.sleep(1)
        for _ in range(3):
            result = docker("exec", nodes[0].name, "berth", "gc", "--config",
                            "/etc/berth/berth.toml", "--grace", "2", timeout=300)
            assert result.returncode == 0
    finally:
        stop.set()
        pusher.join(120)
    assert len(pushed) >= 3
    for tag, image in pushed:
        expect(one.get_manifest("deploy/gc", tag), 200)
        for blob in image.blobs():
            assert one.blob_sha256("deploy/gc", blob.digest) == (blob.digest, len(blob.data))
    expect(one.get_blob("deploy/gc", garbage.layers[0].digest), 404)
    stored = rgw.client().list_objects_v2(Bucket=bucket, Prefix="registry/blobs/")
    keys = {o["Key"].rsplit("/", 1)[1] for o in stored.get("Contents", [])}
    assert garbage.layers[0].digest.split(":")[1] not in keys  # collected by node 1


def test_a_scan_of_an_image_pushed_to_node_1_completes_on_node_2(cluster, docker, tmp_path):
    from scanner.trivydb import build_db_artifact
    from tests.scanner import fixtures
    from tests.support.trivydb import write_trivy_db

    nodes, _, _ = cluster
    write_trivy_db(tmp_path / "db", fixtures.buckets(), updated_at=fixtures.UPDATED_AT)
    layer = tmp_path / "db.tar.gz"
    layer.write_bytes(build_db_artifact(tmp_path / "db")[1])
    docker("cp", str(layer), f"{nodes[1].name}:/tmp/db.tar.gz")
    docker("exec", "--user", "root", nodes[1].name, "chmod", "644", "/tmp/db.tar.gz")
    docker("exec", nodes[1].name, "berth", "scanner", "update-db", "--config",
           "/etc/berth/berth.toml", "--file", "/tmp/db.tar.gz", timeout=300)
    ecr = boto3.client("ecr", endpoint_url=nodes[0].url, region_name="us-east-1",
                       aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="x")
    ecr.create_repository(repositoryName="deploy/scanned",
                          imageScanningConfiguration={"scanOnPush": True})
    image = Image.build([fixtures.wheel_layer()])
    OciClient(nodes[0].url).push_image("deploy/scanned", "v1", image)
    deadline = time.monotonic() + 300
    while True:
        findings = ecr.describe_image_scan_findings(repositoryName="deploy/scanned",
                                                    imageId={"imageTag": "v1"})
        status = findings["imageScanStatus"]["status"]
        if status in ("COMPLETE", "FAILED") or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert status == "COMPLETE", findings["imageScanStatus"]
    assert findings["imageScanFindings"]["findings"]  # the fixture DB's advisories
