"""Every OCI error code against the spec's table (reference A.1)."""

from __future__ import annotations

import json

import pytest

from registry.middleware import render_oci, redact_path
from registry.oci import errors

SPEC_TABLE = {
    "BLOB_UNKNOWN": 404, "BLOB_UPLOAD_INVALID": 400, "BLOB_UPLOAD_UNKNOWN": 404,
    "DIGEST_INVALID": 400, "MANIFEST_BLOB_UNKNOWN": 400, "MANIFEST_INVALID": 400,
    "MANIFEST_UNKNOWN": 404, "NAME_INVALID": 400, "NAME_UNKNOWN": 404, "SIZE_INVALID": 400,
    "UNAUTHORIZED": 401, "DENIED": 403, "UNSUPPORTED": 405, "TOOMANYREQUESTS": 429,
}


def test_every_spec_code_has_exactly_one_class():
    assert {cls.code for cls in errors.ALL_CODES} == set(SPEC_TABLE)
    assert len(errors.ALL_CODES) == len(SPEC_TABLE)


@pytest.mark.parametrize("cls", errors.ALL_CODES, ids=lambda c: c.code)
def test_code_status_and_body(cls):
    assert cls.status == SPEC_TABLE[cls.code]
    response = render_oci(cls(detail={"k": "v"}))
    assert response.status == cls.status
    body = json.loads(response.body)
    assert body == {"errors": [{"code": cls.code, "message": cls.default_message,
                                "detail": {"k": "v"}}]}
    assert response.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("path,expected", [
    ("/v2/x/blobs/uploads/abc?digest=sha256:1", "/v2/x/blobs/uploads/abc?digest=sha256:1"),
    ("/x?X-Amz-Signature=abc&a=1", "/x?X-Amz-Signature=REDACTED&a=1"),
    ("/x?token=secret", "/x?token=REDACTED"),
    ("/x?X-Amz-Credential=AKIA/x&X-Amz-Security-Token=t",
     "/x?X-Amz-Credential=REDACTED&X-Amz-Security-Token=REDACTED"),
])
def test_access_log_redacts_secrets(path, expected):
    assert redact_path(path) == expected
