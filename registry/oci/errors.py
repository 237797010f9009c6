"""OCI distribution error codes, one class per code.

Handlers raise these; exactly one place (``registry.middleware``) renders them as the
spec's JSON body ``{"errors": [{"code", "message", "detail"}]}``. The code table is the
spec's (reference: oci-distribution.md A.1); statuses follow distribution's errcode table.
"""

from __future__ import annotations

from typing import Any, ClassVar


class OCIError(Exception):
    """Base for every error the /v2/ API answers with."""

    code: ClassVar[str] = "UNSUPPORTED"
    status: ClassVar[int] = 400
    default_message: ClassVar[str] = "the operation is unsupported"

    def __init__(
        self,
        message: str | None = None,
        *,
        detail: Any = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.detail = detail
        self.headers = dict(headers or {})
        if status is not None:
            self.status = status  # type: ignore[misc]
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return {"errors": [error]}


class BlobUnknown(OCIError):
    code, status, default_message = "BLOB_UNKNOWN", 404, "blob unknown to registry"


class BlobUploadInvalid(OCIError):
    code, status, default_message = "BLOB_UPLOAD_INVALID", 400, "blob upload invalid"


class BlobUploadUnknown(OCIError):
    code, status, default_message = "BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"


class DigestInvalid(OCIError):
    code, status, default_message = (
        "DIGEST_INVALID", 400, "provided digest did not match uploaded content")


class ManifestBlobUnknown(OCIError):
    code, status, default_message = (
        "MANIFEST_BLOB_UNKNOWN", 400,
        "manifest references a manifest or blob unknown to registry")


class ManifestInvalid(OCIError):
    code, status, default_message = "MANIFEST_INVALID", 400, "manifest invalid"


class ManifestUnknown(OCIError):
    code, status, default_message = "MANIFEST_UNKNOWN", 404, "manifest unknown to registry"


class NameInvalid(OCIError):
    code, status, default_message = "NAME_INVALID", 400, "invalid repository name"


class NameUnknown(OCIError):
    code, status, default_message = "NAME_UNKNOWN", 404, "repository name not known to registry"


class SizeInvalid(OCIError):
    code, status, default_message = (
        "SIZE_INVALID", 400, "provided length did not match content length")


class Unauthorized(OCIError):
    code, status, default_message = "UNAUTHORIZED", 401, "authentication required"


class Denied(OCIError):
    code, status, default_message = "DENIED", 403, "requested access to the resource is denied"


class Unsupported(OCIError):
    code, status, default_message = "UNSUPPORTED", 405, "the operation is unsupported"


class TooManyRequests(OCIError):
    code, status, default_message = "TOOMANYREQUESTS", 429, "too many requests"


class TagInvalid(OCIError):
    """A tag the registry will not store: not a valid tag on a manifest PUT (Distribution's
    ``TAG_INVALID``), or ECR's immutable-tag refusal; docker prints it as ``tag invalid``
    (ecr-api.md 4.3)."""

    code, status, default_message = "TAG_INVALID", 400, "manifest tag did not match URI"


class Unavailable(OCIError):
    """The registry cannot store or answer now (its disk is full, its database is down or
    busy); the message says which, and the client may retry. Not a code of the spec's table,
    which lists client errors only (A.1): ``UNAVAILABLE`` with 503 is distribution's own
    errcode for this case (``errcode.ErrorCodeUnavailable``), so clients that know
    distribution print it as such."""

    code, status, default_message = "UNAVAILABLE", 503, "service unavailable"


ALL_CODES: tuple[type[OCIError], ...] = (
    BlobUnknown, BlobUploadInvalid, BlobUploadUnknown, DigestInvalid, ManifestBlobUnknown,
    ManifestInvalid, ManifestUnknown, NameInvalid, NameUnknown, SizeInvalid, Unauthorized,
    Denied, Unsupported, TooManyRequests,
)
