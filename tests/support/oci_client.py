"""A tiny OCI distribution client on `requests`, for tests that need exact control of the wire.

It speaks the push and pull flows of the distribution spec and nothing else: no auth, no
retries, no redirects across hosts. Every method returns or checks the raw response, so a test
can assert on status codes and headers. `send_partial()` sends a request whose body stops in the
middle, for crash tests.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import requests

from tests.support.images import Blob, Image, MultiPlatform

TIMEOUT = 60  # seconds, for any single request

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


class RegistryError(AssertionError):
    """An unexpected status; the message names the request, the expectation and the answer."""


def describe(response: requests.Response) -> str:
    request = response.request
    try:
        body = response.content[:500]
    except RuntimeError:  # a streamed body that was already consumed
        body = b"<stream>"
    return (
        f"{request.method} {request.url} -> {response.status_code}\n"
        f"response headers: {dict(response.headers)}\nresponse body: {body!r}"
    )


def expect(response: requests.Response, *statuses: int) -> requests.Response:
    """Return `response` if its status is one of `statuses`, else raise RegistryError."""
    if response.status_code not in statuses:
        raise RegistryError(f"expected {statuses}, got:\n{describe(response)}")
    return response


@dataclass
class Upload:
    """An open upload session: its absolute location URL and the next byte offset."""

    location: str
    offset: int = 0


class OciClient:
    """Push and pull against one registry at `base_url` (http://host:port)."""

    def __init__(self, base_url: str, *, session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()

    # -- plumbing --------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return urllib.parse.urljoin(self.base_url + "/", path)

    def request(self, method: str, path_or_url: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", TIMEOUT)
        kwargs.setdefault("allow_redirects", False)
        return self.session.request(method, self.url(path_or_url), **kwargs)

    # -- blobs -----------------------------------------------------------------------------

    def blob_url(self, repo: str, digest: str) -> str:
        return f"/v2/{repo}/blobs/{digest}"

    def head_blob(self, repo: str, digest: str) -> requests.Response:
        return self.request("HEAD", self.blob_url(repo, digest))

    def get_blob(self, repo: str, digest: str, **kwargs) -> requests.Response:
        return self.request("GET", self.blob_url(repo, digest), **kwargs)

    def blob_sha256(self, repo: str, digest: str) -> tuple[str, int]:
        """Stream a blob and return (sha256 digest of the body, body length)."""
        hasher, size = hashlib.sha256(), 0
        # A client follows the registry's redirect (an S3 store's presigned URL).
        with expect(self.get_blob(repo, digest, stream=True, allow_redirects=True),
                    200) as response:
            for chunk in response.iter_content(1 << 20):
                hasher.update(chunk)
                size += len(chunk)
        return "sha256:" + hasher.hexdigest(), size

    def start_upload(self, repo: str) -> Upload:
        response = expect(
            self.request("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"}),
            202,
        )
        return Upload(location=self.location_of(response))

    def patch(self, upload: Upload, chunk: bytes) -> requests.Response:
        """Send one chunk with Content-Range at upload.offset; advance the upload on 202."""
        start, end = upload.offset, upload.offset + len(chunk) - 1
        response = self.request(
            "PATCH",
            upload.location,
            data=chunk,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{end}",
            },
        )
        if response.status_code == 202:
            upload.location = self.location_of(response)
            upload.offset = end + 1
        return response

    def upload_status(self, upload: Upload) -> requests.Response:
        return self.request("GET", upload.location)

    def finish_upload(self, upload: Upload, digest: str, tail: bytes = b"") -> requests.Response:
        headers = {"Content-Type": "application/octet-stream"}
        if tail:
            headers["Content-Range"] = f"{upload.offset}-{upload.offset + len(tail) - 1}"
        return self.request(
            "PUT", with_query(upload.location, digest=digest), data=tail, headers=headers
        )

    def push_blob(self, repo: str, blob: Blob | bytes, *, chunk_size: int | None = None) -> str:
        """Upload a blob monolithically (POST, PUT) or in PATCH chunks; return its digest."""
        data = blob.data if isinstance(blob, Blob) else blob
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        upload = self.start_upload(repo)
        if chunk_size:
            for start in range(0, len(data), chunk_size):
                expect(self.patch(upload, data[start : start + chunk_size]), 202)
            response = self.finish_upload(upload, digest)
        else:
            response = self.request(
                "PUT",
                with_query(upload.location, digest=digest),
                data=data,
                headers={"Content-Type": "application/octet-stream"},
            )
        expect(response, 201)
        return digest

    def ensure_blob(self, repo: str, blob: Blob, *, chunk_size: int | None = None) -> bool:
        """Push `blob` unless HEAD says the repository has it; return True if it was pushed."""
        if self.head_blob(repo, blob.digest).status_code == 200:
            return False
        self.push_blob(repo, blob, chunk_size=chunk_size)
        return True

    # -- manifests -------------------------------------------------------------------------

    def put_manifest(self, repo: str, reference: str, manifest: Blob) -> requests.Response:
        return self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            data=manifest.data,
            headers={"Content-Type": manifest.media_type},
        )

    def push_manifest(self, repo: str, reference: str, manifest: Blob) -> requests.Response:
        response = expect(self.put_manifest(repo, reference, manifest), 201)
        sent = response.headers.get("Docker-Content-Digest")
        if sent is not None and sent != manifest.digest:
            raise RegistryError(
                f"Docker-Content-Digest {sent} != {manifest.digest}\n{describe(response)}"
            )
        return response

    def get_manifest(self, repo: str, reference: str, accept: str = MANIFEST_ACCEPT):
        return self.request("GET", f"/v2/{repo}/manifests/{reference}", headers={"Accept": accept})

    def head_manifest(self, repo: str, reference: str, accept: str = MANIFEST_ACCEPT):
        return self.request(
            "HEAD", f"/v2/{repo}/manifests/{reference}", headers={"Accept": accept}
        )

    # -- whole images ----------------------------------------------------------------------

    def push_image(
        self, repo: str, tag: str, image: Image, *, chunk_size: int | None = None, check=True
    ) -> None:
        """Push config and layers (skipping those HEAD finds when `check`), then the manifest."""
        for blob in image.blobs():
            if check:
                self.ensure_blob(repo, blob, chunk_size=chunk_size)
            else:
                self.push_blob(repo, blob, chunk_size=chunk_size)
        self.push_manifest(repo, tag, image.manifest)

    def push_multi_platform(self, repo: str, tag: str, image: MultiPlatform) -> None:
        for platform_image in image.images:
            self.push_image(repo, platform_image.digest, platform_image)
        self.push_manifest(repo, tag, image.index)

    def referrers(self, repo: str, digest: str, artifact_type: str | None = None):
        params = {"artifactType": artifact_type} if artifact_type else None
        return self.request("GET", f"/v2/{repo}/referrers/{digest}", params=params)

    def tags(self, repo: str) -> list[str]:
        return expect(self.request("GET", f"/v2/{repo}/tags/list"), 200).json()["tags"] or []

    # -- helpers ---------------------------------------------------------------------------

    def location_of(self, response: requests.Response) -> str:
        """The response's Location header as an absolute URL (it may be relative)."""
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"no Location header\n{describe(response)}")
        return urllib.parse.urljoin(response.url, location)


def with_query(url: str, **params: str) -> str:
    """Append query parameters to a location URL; the query it already carries (e.g. signed
    upload state) is kept verbatim, as the spec asks clients to."""
    parts = urllib.parse.urlsplit(url)
    extra = urllib.parse.urlencode(params)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urllib.parse.urlunsplit(parts._replace(query=query))


def parse_range(value: str | None) -> int:
    """`Range: 0-<last>` -> number of bytes the server holds (last + 1)."""
    if not value:
        raise RegistryError("missing Range header")
    start, _, last = value.removeprefix("bytes=").partition("-")
    if start != "0" or not last.isdigit():
        raise RegistryError(f"malformed Range header {value!r}")
    return int(last) + 1


def send_partial(
    url: str,
    method: str,
    *,
    headers: Mapping[str, str],
    body: Iterable[bytes],
    stop_after: int,
    on_stop: Callable[[], None],
) -> int:
    """Send a request with the given headers, stream `body` until `stop_after` bytes are out,
    call `on_stop()` (e.g. SIGKILL the server) and try to send the rest.

    The server is expected to be gone, so the request never completes; returns the number of
    body bytes handed to the socket before on_stop().
    """
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    sent = 0
    stopped = False
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        for piece in body:
            if not stopped and sent + len(piece) >= stop_after:
                head = piece[: stop_after - sent]
                conn.send(head)
                sent += len(head)
                on_stop()
                stopped = True
                piece = piece[len(head) :]
            if stopped:
                conn.send(piece)  # the server is dead: this or getresponse() fails
            else:
                conn.send(piece)
                sent += len(piece)
        response = conn.getresponse()
        raise RegistryError(
            f"{method} {url} completed with {response.status} although the server was killed"
        )
    except (ConnectionError, http.client.HTTPException, OSError) as exc:
        if not stopped:
            raise RegistryError(
                f"{method} {url}: the server closed the connection after {sent} of the body's "
                f"bytes, before it was killed ({type(exc).__name__}; answer: "
                f"{_early_answer(conn)})"
            ) from exc
    finally:
        conn.close()
    return sent


def _early_answer(conn: http.client.HTTPConnection) -> str:
    """The status line a server sent before closing on a half-sent body, if any."""
    try:
        response = conn.getresponse()
        return f"{response.status} {response.read(300)!r}"
    except (http.client.HTTPException, OSError):
        return "none"


def loads(response: requests.Response) -> dict:
    """The JSON body of a response, with the request in the error when it is not JSON."""
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise RegistryError(f"body is not JSON: {exc}\n{describe(response)}") from None
