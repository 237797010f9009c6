"""ECR JSON 1.1 errors: one class per ``__type`` Berth answers with.

Rendered in one place (``registry.middleware``) as ``{"__type": ..., "message": ...}`` with
HTTP 400 (500 for ServerException) and an ``x-amzn-RequestId`` header (reference 1.3).
"""

from __future__ import annotations

from typing import ClassVar


class ECRError(Exception):
    type_name: ClassVar[str] = "ServerException"
    status: ClassVar[int] = 400

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)

    def body(self) -> dict[str, str]:
        return {"__type": self.type_name, "message": self.message}


def _error(name: str, status: int = 400) -> type[ECRError]:
    return type(name, (ECRError,), {"type_name": name, "status": status,
                                    "__doc__": f"``{name}`` on the wire."})


# Authentication (reference 1.2) and generic protocol errors.
UnrecognizedClientException = _error("UnrecognizedClientException")
InvalidSignatureException = _error("InvalidSignatureException")
IncompleteSignatureException = _error("IncompleteSignatureException")
MissingAuthenticationTokenException = _error("MissingAuthenticationTokenException", 403)
ExpiredTokenException = _error("ExpiredTokenException")
AccessDeniedException = _error("AccessDeniedException")
UnknownOperationException = _error("UnknownOperationException")
SerializationException = _error("SerializationException")
ServerException = _error("ServerException", 500)
# botocore's standard retry mode treats this code as transient: a stalled body is retried.
RequestTimeoutException = _error("RequestTimeoutException", 408)

# The operation errors of the ECR model that Berth raises.
InvalidParameterException = _error("InvalidParameterException")
InvalidTagParameterException = _error("InvalidTagParameterException")
TooManyTagsException = _error("TooManyTagsException")
RepositoryAlreadyExistsException = _error("RepositoryAlreadyExistsException")
RepositoryNotFoundException = _error("RepositoryNotFoundException")
RepositoryNotEmptyException = _error("RepositoryNotEmptyException")
RepositoryPolicyNotFoundException = _error("RepositoryPolicyNotFoundException")
RegistryPolicyNotFoundException = _error("RegistryPolicyNotFoundException")
ImageNotFoundException = _error("ImageNotFoundException")
ImageAlreadyExistsException = _error("ImageAlreadyExistsException")
ImageTagAlreadyExistsException = _error("ImageTagAlreadyExistsException")
ImageDigestDoesNotMatchException = _error("ImageDigestDoesNotMatchException")
LayersNotFoundException = _error("LayersNotFoundException")
ReferencedImagesNotFoundException = _error("ReferencedImagesNotFoundException")
LayerAlreadyExistsException = _error("LayerAlreadyExistsException")
LayerInaccessibleException = _error("LayerInaccessibleException")
InvalidLayerException = _error("InvalidLayerException")
InvalidLayerPartException = _error("InvalidLayerPartException")
LayerPartTooSmallException = _error("LayerPartTooSmallException")
EmptyUploadException = _error("EmptyUploadException")
UploadNotFoundException = _error("UploadNotFoundException")
LimitExceededException = _error("LimitExceededException")
ValidationException = _error("ValidationException")
ScanNotFoundException = _error("ScanNotFoundException")
UnsupportedImageTypeException = _error("UnsupportedImageTypeException")

# A body over its operation's limit, refused before it is read: the ECR model has no type
# for it, ValidationException is its generic input error, and 413 says which kind.
RequestBodyTooLarge = type("RequestBodyTooLarge", (ECRError,), {
    "type_name": "ValidationException", "status": 413,
    "__doc__": "``ValidationException`` (HTTP 413) for an oversized request body."})


def invalid_parameter(member: str, constraint: str) -> ECRError:
    return InvalidParameterException(
        f"Invalid parameter at '{member}' failed to satisfy constraint: '{constraint}'")
