"""Bad input gets the spec's status and error code, and changes nothing (DESIGN inv. 4).

One table; each row is a request a broken or hostile client might send. After each, a
snapshot of everything the registry stores (blob files, sessions, database rows) must equal
the snapshot before.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import sqlalchemy as sa
from yarl import URL

from registry.metadata import tables as t
from registry.metadata.factory import open_database
from tests.oci.helpers import image_manifest, push_blob, push_image, sha256

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
GOOD = sha256(b"good")
UNKNOWN_SESSION = "0" * 32
LONG_NAME = "a" * 256
UPPER_HEX = "sha256:" + "A" * 64

def member(raw: bytes):
    """A body: the valid manifest with one more member, ``"x": <raw JSON text>``."""
    return lambda manifest: b'{"x": ' + raw + b", " + manifest[1:]


CASES = [
    # description, method, path, headers, body, status, code
    ("upper-case name", "GET", "/v2/Library/app/manifests/latest", {}, None, 400, "NAME_INVALID"),
    ("dot-dot name", "GET", "/v2/lib/../etc/manifests/latest", {}, None, 400, "NAME_INVALID"),
    ("double slash", "POST", "/v2/lib//app/blobs/uploads/", {}, None, 400, "NAME_INVALID"),
    ("leading slash", "PUT", "/v2//lib/manifests/v1", {"Content-Type": MANIFEST_TYPE}, b"{}",
     400, "NAME_INVALID"),
    ("name over 255", "POST", f"/v2/{LONG_NAME}/blobs/uploads/", {}, None, 400, "NAME_INVALID"),
    ("trailing separator", "POST", "/v2/lib-/blobs/uploads/", {}, None, 400, "NAME_INVALID"),
    ("malformed digest on blob GET", "GET", "/v2/lib/app/blobs/sha256:xyz", {}, None, 400,
     "DIGEST_INVALID"),
    ("upper-case hex", "GET", f"/v2/lib/app/blobs/{UPPER_HEX}", {}, None, 400, "DIGEST_INVALID"),
    ("short sha256", "POST", "/v2/lib/app/blobs/uploads/?digest=sha256:abcd", {}, b"x", 400,
     "DIGEST_INVALID"),
    ("unsupported algorithm", "POST", "/v2/lib/app/blobs/uploads/?digest=md5:" + "a" * 32, {},
     b"x", 400, "UNSUPPORTED"),
    ("unsupported digest-algorithm", "POST", "/v2/lib/app/blobs/uploads/?digest-algorithm=sha1",
     {}, None, 400, "UNSUPPORTED"),
    ("no digest at all", "GET", "/v2/lib/app/blobs/nodigest", {}, None, 400, "DIGEST_INVALID"),
    ("wrong digest, single POST", "POST", f"/v2/lib/app/blobs/uploads/?digest={GOOD}", {},
     b"bad", 400, "DIGEST_INVALID"),
    ("manifest digest mismatch", "PUT", f"/v2/lib/app/manifests/{GOOD}",
     {"Content-Type": MANIFEST_TYPE}, "VALID_MANIFEST", 400, "DIGEST_INVALID"),
    ("manifest by bad digest reference", "PUT", "/v2/lib/app/manifests/sha256:baddigeststring",
     {"Content-Type": MANIFEST_TYPE}, "VALID_MANIFEST", 400, "DIGEST_INVALID"),
    # A tag Berth will not store is Distribution's TAG_INVALID (issue 8), not MANIFEST_INVALID.
    ("invalid tag", "PUT", "/v2/lib/app/manifests/-bad-tag", {"Content-Type": MANIFEST_TYPE},
     "VALID_MANIFEST", 400, "TAG_INVALID"),
    ("tag over 128", "PUT", "/v2/lib/app/manifests/" + "t" * 129,
     {"Content-Type": MANIFEST_TYPE}, "VALID_MANIFEST", 400, "TAG_INVALID"),
    ("tag ending in newline", "PUT", "/v2/lib/app/manifests/v1%0A",
     {"Content-Type": MANIFEST_TYPE}, "VALID_MANIFEST", 400, "TAG_INVALID"),
    ("?tag= ending in newline", "PUT", "/v2/lib/app/manifests/v1?tag=v2%0A",
     {"Content-Type": MANIFEST_TYPE}, "VALID_MANIFEST", 400, "TAG_INVALID"),
    ("name ending in newline, manifest PUT", "PUT", "/v2/lib/app%0A/manifests/v1",
     {"Content-Type": MANIFEST_TYPE}, "VALID_MANIFEST", 400, "NAME_INVALID"),
    ("name ending in newline, upload", "POST", "/v2/lib/app%0A/blobs/uploads/", {}, None, 400,
     "NAME_INVALID"),
    ("name ending in newline, pull", "GET", "/v2/lib/existing%0A/manifests/v1", {}, None, 400,
     "NAME_INVALID"),
    ("name ending in newline, tags", "GET", "/v2/lib/existing%0A/tags/list", {}, None, 400,
     "NAME_INVALID"),
    ("digest ending in newline, blob GET", "GET", f"/v2/lib/existing/blobs/{GOOD}%0A", {}, None,
     400, "DIGEST_INVALID"),
    ("digest ending in newline, single POST", "POST",
     f"/v2/lib/app/blobs/uploads/?digest={GOOD}%0A", {}, b"good", 400, "DIGEST_INVALID"),
    ("digest ending in newline, manifest PUT", "PUT", f"/v2/lib/app/manifests/{GOOD}%0A",
     {"Content-Type": MANIFEST_TYPE}, "VALID_MANIFEST", 400, "DIGEST_INVALID"),
    ("digest ending in newline, referrers", "GET", f"/v2/lib/existing/referrers/{GOOD}%0A", {},
     None, 400, "DIGEST_INVALID"),
    # A reference that is neither a tag nor a supported digest cannot exist: 404 on reads and
    # deletes (Distribution, the conformance suite), 400 on PUT (rows above).
    ("pull by tag ending in newline", "GET", "/v2/lib/existing/manifests/v1%0A", {}, None, 404,
     "MANIFEST_UNKNOWN"),
    ("pull by bad digest reference", "GET", "/v2/lib/existing/manifests/sha256:baddigeststring",
     {}, None, 404, "MANIFEST_UNKNOWN"),
    ("pull by unsupported algorithm", "GET", "/v2/lib/existing/manifests/md5:" + "a" * 32, {},
     None, 404, "MANIFEST_UNKNOWN"),
    ("pull by invalid tag", "GET", "/v2/lib/existing/manifests/-bad", {}, None, 404,
     "MANIFEST_UNKNOWN"),
    ("delete by tag ending in newline", "DELETE", "/v2/lib/existing/manifests/v1%0A", {}, None,
     404, "MANIFEST_UNKNOWN"),
    ("delete by bad digest reference", "DELETE",
     "/v2/lib/existing/manifests/sha256:baddigeststring", {}, None, 404, "MANIFEST_UNKNOWN"),
    ("pull from unknown repository by invalid reference", "GET", "/v2/no/such/manifests/-bad",
     {}, None, 404, "NAME_UNKNOWN"),
    # Hostile JSON: an otherwise valid manifest made hostile by one member or its encoding.
    ("manifest nested 100,000 deep", "PUT", "/v2/lib/app/manifests/v1",
     {"Content-Type": MANIFEST_TYPE}, member(b"[" * 100_000 + b"]" * 100_000), 400,
     "MANIFEST_INVALID"),
    ("manifest nested 65 deep", "PUT", "/v2/lib/app/manifests/v1",
     {"Content-Type": MANIFEST_TYPE}, member(b"[" * 64 + b"]" * 64), 400, "MANIFEST_INVALID"),
    ("5,000-digit integer", "PUT", "/v2/lib/app/manifests/v1", {"Content-Type": MANIFEST_TYPE},
     member(b"9" * 5000), 400, "MANIFEST_INVALID"),
    ("lone high surrogate", "PUT", "/v2/lib/app/manifests/v1", {"Content-Type": MANIFEST_TYPE},
     member(b'"\\ud800"'), 400, "MANIFEST_INVALID"),
    ("lone low surrogate in a key", "PUT", "/v2/lib/app/manifests/v1",
     {"Content-Type": MANIFEST_TYPE}, member(b'{"\\udc00x": 1}'), 400, "MANIFEST_INVALID"),
    ("UTF-8-encoded surrogate", "PUT", "/v2/lib/app/manifests/v1",
     {"Content-Type": MANIFEST_TYPE}, member(b'"\xed\xa0\x80"'), 400, "MANIFEST_INVALID"),
    ("invalid UTF-8 in a string", "PUT", "/v2/lib/app/manifests/v1",
     {"Content-Type": MANIFEST_TYPE}, member(b'"\xff"'), 400, "MANIFEST_INVALID"),
    ("UTF-16 manifest", "PUT", "/v2/lib/app/manifests/v1", {"Content-Type": MANIFEST_TYPE},
     lambda m: m.decode().encode("utf-16"), 400, "MANIFEST_INVALID"),
    ("UTF-16LE manifest without BOM", "PUT", "/v2/lib/app/manifests/v1",
     {"Content-Type": MANIFEST_TYPE}, lambda m: m.decode().encode("utf-16-le"), 400,
     "MANIFEST_INVALID"),
    ("UTF-32 manifest", "PUT", "/v2/lib/app/manifests/v1", {"Content-Type": MANIFEST_TYPE},
     lambda m: m.decode().encode("utf-32"), 400, "MANIFEST_INVALID"),
    ("UTF-8 byte order mark", "PUT", "/v2/lib/app/manifests/v1",
     {"Content-Type": MANIFEST_TYPE}, lambda m: b"\xef\xbb\xbf" + m, 400, "MANIFEST_INVALID"),
    ("NaN", "PUT", "/v2/lib/app/manifests/v1", {"Content-Type": MANIFEST_TYPE}, member(b"NaN"),
     400, "MANIFEST_INVALID"),
    ("hostile manifest to a new repository", "PUT", "/v2/lib/fresh/manifests/v1",
     {"Content-Type": MANIFEST_TYPE}, member(b"[" * 100_000 + b"]" * 100_000), 400,
     "MANIFEST_INVALID"),
    ("malformed JSON to a new repository", "PUT", "/v2/lib/fresh/manifests/v1",
     {"Content-Type": MANIFEST_TYPE}, b"{", 400, "MANIFEST_INVALID"),
    ("digest mismatch to a new repository", "PUT", f"/v2/lib/fresh/manifests/{GOOD}",
     {"Content-Type": MANIFEST_TYPE}, "VALID_MANIFEST", 400, "DIGEST_INVALID"),
    ("Content-Range of 5,000 digits", "PATCH", "SESSION", {"Content-Range": "10-" + "9" * 5000},
     b"data", 416, "BLOB_UPLOAD_INVALID"),
    ("malformed JSON", "PUT", "/v2/lib/app/manifests/v1", {"Content-Type": MANIFEST_TYPE},
     b'{"schemaVersion": 2,', 400, "MANIFEST_INVALID"),
    ("JSON array", "PUT", "/v2/lib/app/manifests/v1", {"Content-Type": MANIFEST_TYPE}, b"[]",
     400, "MANIFEST_INVALID"),
    ("schema version 1", "PUT", "/v2/lib/app/manifests/v1",
     {"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"},
     b'{"schemaVersion": 1, "name": "x", "tag": "v1", "fsLayers": []}', 400, "MANIFEST_INVALID"),
    ("mediaType contradicts Content-Type", "PUT", "/v2/lib/app/manifests/v1",
     {"Content-Type": "application/vnd.oci.image.index.v1+json"}, "VALID_MANIFEST", 400,
     "MANIFEST_INVALID"),
    ("descriptor without digest", "PUT", "/v2/lib/app/manifests/v1",
     {"Content-Type": MANIFEST_TYPE}, json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
     "config": {"mediaType": "x", "size": 1}, "layers": []}).encode(), 400, "MANIFEST_INVALID"),
    ("negative size", "PUT", "/v2/lib/app/manifests/v1", {"Content-Type": MANIFEST_TYPE},
     json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE, "config": {
         "mediaType": "x", "size": -1, "digest": GOOD}, "layers": []}).encode(), 400,
     "MANIFEST_INVALID"),
    ("manifest referencing unknown blob", "PUT", "/v2/lib/app/manifests/v1",
     {"Content-Type": MANIFEST_TYPE}, image_manifest(b"{}", [b"never uploaded"]), 400,
     "MANIFEST_BLOB_UNKNOWN"),
    ("index referencing unknown manifest", "PUT", "/v2/lib/app/manifests/v1",
     {"Content-Type": "application/vnd.oci.image.index.v1+json"}, json.dumps({
         "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [{"mediaType": MANIFEST_TYPE, "digest": GOOD, "size": 4}]}).encode(),
     400, "MANIFEST_BLOB_UNKNOWN"),
    ("manifest over 4 MiB", "PUT", "/v2/lib/app/manifests/v1", {"Content-Type": MANIFEST_TYPE},
     b"{" + b" " * (4 * 1024 * 1024) + b"}", 413, "SIZE_INVALID"),
    ("unknown upload PATCH", "PATCH", f"/v2/lib/app/blobs/uploads/{UNKNOWN_SESSION}", {},
     b"data", 404, "BLOB_UPLOAD_UNKNOWN"),
    ("unknown upload PUT", "PUT", f"/v2/lib/app/blobs/uploads/{UNKNOWN_SESSION}?digest={GOOD}",
     {}, b"good", 404, "BLOB_UPLOAD_UNKNOWN"),
    ("unknown upload GET", "GET", f"/v2/lib/app/blobs/uploads/{UNKNOWN_SESSION}", {}, None, 404,
     "BLOB_UPLOAD_UNKNOWN"),
    ("unknown upload DELETE", "DELETE", f"/v2/lib/app/blobs/uploads/{UNKNOWN_SESSION}", {}, None,
     404, "BLOB_UPLOAD_UNKNOWN"),
    ("malformed upload id", "GET", "/v2/lib/app/blobs/uploads/..%2F..%2Fetc", {}, None, 404,
     "BLOB_UPLOAD_UNKNOWN"),
    ("session of another repository", "PATCH", "OTHER_REPO_SESSION", {}, b"data", 404,
     "BLOB_UPLOAD_UNKNOWN"),
    ("Content-Range gap", "PATCH", "SESSION", {"Content-Range": "20-23"}, b"data", 416,
     "BLOB_UPLOAD_INVALID"),
    ("Content-Range overlap", "PATCH", "SESSION", {"Content-Range": "5-8"}, b"data", 416,
     "BLOB_UPLOAD_INVALID"),
    ("malformed Content-Range", "PATCH", "SESSION", {"Content-Range": "bytes=a-b"}, b"data",
     416, "BLOB_UPLOAD_INVALID"),
    ("Content-Range longer than body", "PATCH", "SESSION", {"Content-Range": "10-19"},
     b"data", 400, "SIZE_INVALID"),
    ("closing PUT without digest", "PUT", "SESSION", {}, None, 400, "DIGEST_INVALID"),
    ("closing PUT with wrong digest", "PUT", f"SESSION?digest={GOOD}", {}, None, 400,
     "DIGEST_INVALID"),
    ("unknown manifest", "GET", "/v2/lib/existing/manifests/nope", {}, None, 404,
     "MANIFEST_UNKNOWN"),
    ("unknown blob", "GET", f"/v2/lib/existing/blobs/{GOOD}", {}, None, 404, "BLOB_UNKNOWN"),
    ("delete unknown tag", "DELETE", "/v2/lib/existing/manifests/nope", {}, None, 404,
     "MANIFEST_UNKNOWN"),
    ("tags of unknown repository", "GET", "/v2/no/such/tags/list", {}, None, 404,
     "NAME_UNKNOWN"),
    ("bad page size", "GET", "/v2/lib/existing/tags/list?n=-1", {}, None, 400, "UNSUPPORTED"),
    ("page size in superscript digits", "GET", "/v2/lib/existing/tags/list?n=%C2%B2", {}, None,
     400, "UNSUPPORTED"),
    ("page size in Arabic-Indic digits", "GET", "/v2/lib/existing/tags/list?n=%D9%A3", {},
     None, 400, "UNSUPPORTED"),
    ("unsupported method", "POST", "/v2/lib/existing/manifests/v1", {}, None, 405,
     "UNSUPPORTED"),
]


def snapshot(config) -> dict[str, object]:
    data = config.data_dir
    files = sorted(str(p.relative_to(data)) for p in (data / "blobs").rglob("*") if p.is_file())
    sessions = {p.name: (p / "data").stat().st_size for p in (data / "uploads").iterdir()}
    # Read on whichever database the config names (BERTH_TEST_METADATA), table by table.
    database = open_database(config)
    try:
        with database.engine().connect() as conn:
            tables = {name: conn.execute(sa.select(t.metadata.tables[name]).order_by(
                *t.metadata.tables[name].primary_key.columns)).all()
                for name in ("repositories", "blobs", "repository_blobs", "manifests", "tags",
                             "manifest_references")}
            for name in ("events", "jobs"):
                table = t.metadata.tables[name]
                tables[name] = conn.execute(sa.select(table.c.id, table.c.kind, table.c.payload)
                                            .order_by(table.c.id)).all()
    finally:
        database.close_sync()
    return {"files": files, "sessions": sessions, "tables": tables}


@pytest.mark.parametrize("description,method,path,headers,body,status,code", CASES,
                         ids=[c[0] for c in CASES])
async def test_bad_input(client, config, description, method, path, headers, body, status,
                         code):
    await push_image(client, "lib/existing", "v1")
    resp = await client.post("/v2/lib/app/blobs/uploads/")
    session = resp.headers["Location"]
    await client.patch(session, data=b"0123456789", headers={"Content-Range": "0-9"})
    resp = await client.post("/v2/lib/other/blobs/uploads/")
    other_session = resp.headers["Location"].rsplit("/", 1)[1]
    if path.startswith("SESSION"):
        path = session + path[len("SESSION"):]
    if path == "OTHER_REPO_SESSION":
        path = f"/v2/lib/app/blobs/uploads/{other_session}"
    if body == "VALID_MANIFEST" or callable(body):
        config_blob = b"{}"
        await push_blob(client, "lib/app", config_blob)
        valid = image_manifest(config_blob, [])
        body = body(valid) if callable(body) else valid
    before = snapshot(config)
    # An encoded URL, so that "..", "//" and the like reach the server as sent.
    url = URL(f"http://127.0.0.1:{client.server.port}{path}", encoded=True)
    resp = await client.session.request(method, url, data=body, headers=headers)
    assert resp.status == status, await resp.text()
    payload = await resp.json(content_type=None)
    assert payload["errors"][0]["code"] == code
    assert payload["errors"][0]["message"]
    assert snapshot(config) == before


async def _raw_request(port: int, head: bytes, body: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + body)
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.3)  # let the server notice the closed connection


@pytest.mark.parametrize("kind", ["single POST", "PATCH", "closing PUT", "manifest PUT"])
async def test_body_shorter_than_content_length(client, config, kind):
    await push_image(client, "lib/existing", "v1")
    resp = await client.post("/v2/lib/app/blobs/uploads/")
    session = resp.headers["Location"]
    await client.patch(session, data=b"0123456789", headers={"Content-Range": "0-9"})
    before = snapshot(config)
    data = b"x" * 1000
    targets = {
        "single POST": ("POST", f"/v2/lib/app/blobs/uploads/?digest={sha256(data)}"),
        "PATCH": ("PATCH", session),
        "closing PUT": ("PUT", f"{session}?digest={sha256(b'0123456789' + data)}"),
        "manifest PUT": ("PUT", "/v2/lib/app/manifests/v1"),
    }
    method, path = targets[kind]
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(data)}\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    await _raw_request(client.server.port, head, data[:400])
    after = snapshot(config)
    if kind == "single POST":
        # The aborted POST's own session is gone with it.
        assert after == before
    else:
        assert after == before
    resp = await client.get(session)
    assert resp.headers["Range"] == "0-9"


async def test_a_page_size_of_5000_digits_is_the_maximum_page(client):
    await push_image(client, "lib/existing", "v1")
    resp = await client.get("/v2/lib/existing/tags/list?n=" + "9" * 5000)
    assert resp.status == 200
    assert (await resp.json())["tags"] == ["v1"]


async def test_a_refused_manifest_leaves_no_new_repository(client):
    """create_on_push must not create a repository for a manifest it then refuses."""
    resp = await client.put("/v2/brand/new/manifests/v1", data=image_manifest(b"{}", [b"x"]),
                            headers={"Content-Type": MANIFEST_TYPE})
    assert resp.status == 400
    assert (await resp.json())["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    resp = await client.get("/v2/brand/new/tags/list")
    assert resp.status == 404
    assert (await resp.json())["errors"][0]["code"] == "NAME_UNKNOWN"
    assert (await (await client.get("/v2/_catalog")).json())["repositories"] == []


@pytest.mark.parametrize("query", ["skip=%C2%B2", "n=%C2%B2", "skip=-1", "skip=99999999999"])
async def test_catalog_paging_numbers_are_ascii_digits(client, query):
    """str.isdigit() accepts "²", which int() refuses: such values are 400, never a 500."""
    resp = await client.get(f"/v2/_catalog?{query}")
    assert resp.status == 400
    assert (await resp.json())["errors"][0]["code"] in {"UNSUPPORTED", "PAGINATION_NUMBER_INVALID"}
