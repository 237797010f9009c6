"""The /v2/ route table: one line per endpoint of the OCI distribution API."""

from __future__ import annotations

from aiohttp import web

from registry.oci import blobs, discovery, manifest_routes, uploads

_NAME = r"{name:[^{}]+?}"
_UPLOADS = f"/v2/{_NAME}/blobs/uploads/"


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v2/", discovery.version_check, name="version")
    r.add_get("/v2/_catalog", discovery.catalog, name="catalog")
    r.add_get(f"/v2/{_NAME}/tags/list", discovery.list_tags, name="tags_list")
    r.add_get(f"/v2/{_NAME}/referrers/{{digest}}", discovery.list_referrers, name="referrers")
    r.add_get(f"/v2/{_NAME}/manifests/{{reference}}", manifest_routes.get_manifest,
              name="manifest_get", allow_head=False)
    r.add_head(f"/v2/{_NAME}/manifests/{{reference}}", manifest_routes.head_manifest,
               name="manifest_head")
    r.add_put(f"/v2/{_NAME}/manifests/{{reference}}", manifest_routes.put_manifest,
              name="manifest_put")
    r.add_delete(f"/v2/{_NAME}/manifests/{{reference}}", manifest_routes.delete_manifest,
                 name="manifest_delete")
    r.add_post(_UPLOADS, uploads.start_upload, name="upload_start")
    r.add_patch(_UPLOADS + "{session}", uploads.patch_upload, name="upload_patch")
    r.add_put(_UPLOADS + "{session}", uploads.put_upload, name="upload_put")
    r.add_get(_UPLOADS + "{session}", uploads.get_upload, name="upload_status")
    r.add_delete(_UPLOADS + "{session}", uploads.cancel_upload, name="upload_cancel")
    r.add_get(f"/v2/{_NAME}/blobs/{{digest}}", blobs.get_blob, name="blob_get",
              allow_head=False)
    r.add_head(f"/v2/{_NAME}/blobs/{{digest}}", blobs.head_blob, name="blob_head")
    r.add_delete(f"/v2/{_NAME}/blobs/{{digest}}", blobs.delete_blob, name="blob_delete")
