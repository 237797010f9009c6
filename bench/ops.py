"""OCI distribution operations the workloads time: blob push (monolithic and chunked), blob
pull, small image push (config, layer, manifest by tag). Each speaks the spec's wire
protocol directly through ``httpclient.Connection`` and checks the status codes the spec requires, so a target that
answers fast but wrong is caught rather than measured.
"""

from __future__ import annotations

from bench.httpclient import Connection, FileRange, HttpError, Response, with_query
from bench.payload import OCI_MANIFEST, BlobFile, SmallImage

_OCTET = {"Content-Type": "application/octet-stream"}


def start_upload(conn: Connection, repo: str) -> str:
    """POST a new upload session; returns its ``Location``."""
    response = conn.request("POST", f"/v2/{repo}/blobs/uploads/").expect(202)
    location = response.header("location")
    if not location:
        raise HttpError("202 for upload POST without Location")
    return location


def push_blob_monolithic(conn: Connection, repo: str, blob: BlobFile) -> Response:
    """POST, then one PUT ?digest= carrying the whole blob; returns the PUT's response."""
    location = start_upload(conn, repo)
    with open(blob.path, "rb") as source:
        response = conn.request(
            "PUT", with_query(location, "digest", blob.digest), headers=dict(_OCTET),
            body=FileRange(source.fileno(), 0, blob.size))
    response.expect(201)
    _check_digest_header(response, blob.digest)
    return response


def push_blob_chunked(conn: Connection, repo: str, blob: BlobFile,
                      chunk_size: int) -> Response:
    """POST, one PATCH with Content-Range per chunk, then PUT ?digest= with no body;
    returns the PUT's response."""
    location = start_upload(conn, repo)
    with open(blob.path, "rb") as source:
        offset = 0
        while offset < blob.size:
            count = min(chunk_size, blob.size - offset)
            headers = {**_OCTET, "Content-Range": f"{offset}-{offset + count - 1}"}
            response = conn.request("PATCH", location, headers=headers,
                                    body=FileRange(source.fileno(), offset, count)).expect(202)
            location = response.header("location") or location
            offset += count
    response = conn.request("PUT", with_query(location, "digest", blob.digest)).expect(201)
    _check_digest_header(response, blob.digest)
    return response


def push_bytes(conn: Connection, repo: str, data: bytes, digest: str) -> None:
    location = start_upload(conn, repo)
    conn.request("PUT", with_query(location, "digest", digest), headers=dict(_OCTET),
                 body=data).expect(201)


def pull_blob(conn: Connection, repo: str, digest: str, size: int) -> Response:
    """GET the blob, following a redirect (an S3-backed registry answers 307 to a presigned
    URL of the object), reading and discarding the body; checks the length. Returns the
    final response (``redirects`` lists the hops)."""
    response = conn.request("GET", f"/v2/{repo}/blobs/{digest}", discard_body=True,
                            follow_redirects=True).expect(200)
    if response.body_length != size:
        raise HttpError(f"pulled {response.body_length} bytes, expected {size}")
    return response


def push_image(conn: Connection, repo: str, image: SmallImage, tag: str) -> None:
    """Push config and layer (POST + PUT ?digest= each), then PUT the manifest by tag:
    five requests, the way a client pushes a new image."""
    push_bytes(conn, repo, image.config, image.config_digest)
    push_bytes(conn, repo, image.layer, image.layer_digest)
    conn.request("PUT", f"/v2/{repo}/manifests/{tag}",
                 headers={"Content-Type": OCI_MANIFEST}, body=image.manifest).expect(201)


def check_manifest(conn: Connection, repo: str, image: SmallImage, tag: str) -> None:
    """GET the manifest by tag and compare the bytes with what was pushed."""
    response = conn.request("GET", f"/v2/{repo}/manifests/{tag}",
                            headers={"Accept": OCI_MANIFEST}).expect(200)
    if response.body != image.manifest:
        raise HttpError(f"manifest GET of {tag} returned different bytes than were pushed")


def push_small_image(conn: Connection, repo: str, image: SmallImage, tag: str) -> None:
    """Push config, layer and manifest (by tag), then GET them back to check the bytes."""
    push_image(conn, repo, image, tag)
    check_manifest(conn, repo, image, tag)
    response = conn.request("GET", f"/v2/{repo}/blobs/{image.layer_digest}",
                            follow_redirects=True).expect(200)
    if response.body != image.layer:
        raise HttpError("small blob GET returned different bytes than were pushed")


def _check_digest_header(response: Response, digest: str) -> None:
    got = response.header("docker-content-digest")
    if got and got != digest:
        raise HttpError(f"server reports digest {got}, expected {digest}")


def file_is_cached(path: str) -> None:
    """Read the file once so the timed runs read it from the page cache."""
    with open(path, "rb") as source:
        while source.read(16 * 1024 * 1024):
            pass
