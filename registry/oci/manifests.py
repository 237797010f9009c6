"""Manifest parsing and validation: what a pushed manifest is and what it references.

Pure functions over bytes; the handler stores the bytes exactly as received. Accepted: OCI
image manifest and index (nested indexes too), artifacts (``artifactType``, ``subject``),
Docker schema 2 manifest and manifest list. Docker schema 1 is refused.

A manifest must be strict JSON (``policies.jsondoc.strict_loads``): UTF-8 without a byte order
mark (its digest is over those exact bytes; Go's encoding/json refuses a BOM as well), no lone
surrogate escapes, integers of at most 4,300 digits, and at most ``MANIFEST_MAX_DEPTH`` levels
of nesting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policies.jsondoc import JsonTextError, strict_loads
from registry.metadata.models import ManifestRecord, Reference
from registry.oci.digests import Digest, parse_digest
from registry.oci.errors import ManifestInvalid, OCIError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")

IMAGE_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = IMAGE_TYPES + INDEX_TYPES

# Real manifests nest 5 levels (index > manifests > descriptor > platform > os.features);
# unknown fields may add some, and the limit stays far below the interpreter's stack.
MANIFEST_MAX_DEPTH = 64


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str
    references: tuple[Reference, ...]
    subject: Digest | None
    artifact_type: str | None  # the referrers API's artifactType (A.5)
    config_media_type: str | None
    annotations: dict[str, str] | None

    def record(self, digest: Digest, size: int) -> ManifestRecord:
        return ManifestRecord(digest=str(digest), media_type=self.media_type, size=size,
                              artifact_type=self.artifact_type,
                              subject_digest=str(self.subject) if self.subject else None,
                              annotations=self.annotations, references=self.references)


def _invalid(message: str) -> ManifestInvalid:
    return ManifestInvalid(f"manifest invalid: {message}")


def _descriptor(value: Any, where: str) -> tuple[Digest, dict[str, Any]]:
    if not isinstance(value, dict):
        raise _invalid(f"{where} is not a descriptor object")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise _invalid(f"{where}.mediaType is missing")
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{where}.size must be a non-negative integer")
    digest_text = value.get("digest")
    if not isinstance(digest_text, str):
        raise _invalid(f"{where}.digest is missing")
    try:
        digest = parse_digest(digest_text)
    except OCIError:
        raise _invalid(f"{where}.digest is not a valid digest") from None
    urls = value.get("urls")
    if urls is not None and (not isinstance(urls, list)
                             or not all(isinstance(u, str) for u in urls)):
        raise _invalid(f"{where}.urls must be a list of strings")
    annotations = value.get("annotations")
    if annotations is not None and not _string_map(annotations):
        raise _invalid(f"{where}.annotations must map strings to strings")
    return digest, value


def _string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _media_type(document: dict[str, Any], content_type: str | None) -> str:
    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType must be a string")
    sent = (content_type or "").split(";", 1)[0].strip().lower() or None
    if sent in DOCKER_SCHEMA1 or declared in DOCKER_SCHEMA1 or document.get("schemaVersion") == 1:
        raise _invalid("Docker schema 1 manifests are not supported")
    if declared and sent in MANIFEST_TYPES and declared != sent:
        raise _invalid(f"mediaType {declared!r} does not match Content-Type {sent!r}")
    media_type = declared or (sent if sent in MANIFEST_TYPES else None)
    if media_type is None:
        # OCI makes mediaType a SHOULD: infer it from the structure.
        media_type = OCI_INDEX if "manifests" in document else OCI_MANIFEST
    if media_type not in MANIFEST_TYPES:
        raise _invalid(f"unsupported manifest media type {media_type!r}")
    return media_type


def load_manifest_json(body: bytes | str) -> Any:
    """The manifest's JSON value, parsed strictly.

    Raises:
        ManifestInvalid: not UTF-8 strict JSON within the manifest limits; says why.
    """
    try:
        return strict_loads(body, max_depth=MANIFEST_MAX_DEPTH)
    except JsonTextError as exc:
        raise _invalid(str(exc)) from None


def parse_manifest(body: bytes, content_type: str | None) -> ParsedManifest:
    """Validate a manifest and list what it references.

    Raises:
        ManifestInvalid: malformed JSON, wrong schema version, bad descriptors, or a
            mediaType that contradicts Content-Type.
    """
    document = load_manifest_json(body)
    if not isinstance(document, dict):
        raise _invalid("not a JSON object")
    media_type = _media_type(document, content_type)
    if document.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")
    references: list[Reference] = []
    config_media_type: str | None = None
    if media_type in IMAGE_TYPES:
        config_digest, config = _descriptor(document.get("config"), "config")
        config_media_type = config["mediaType"]
        references.append(Reference(str(config_digest), "blob"))
        layers = document.get("layers", [])
        if not isinstance(layers, list):
            raise _invalid("layers must be a list")
        for i, layer in enumerate(layers):
            digest, descriptor = _descriptor(layer, f"layers[{i}]")
            # Non-distributable (foreign) layers live elsewhere: their blob may be absent.
            if not descriptor.get("urls"):
                references.append(Reference(str(digest), "blob"))
    else:
        manifests = document.get("manifests")
        if not isinstance(manifests, list):
            raise _invalid("manifests must be a list")
        for i, child in enumerate(manifests):
            digest, _ = _descriptor(child, f"manifests[{i}]")
            references.append(Reference(str(digest), "manifest"))
    subject: Digest | None = None
    if document.get("subject") is not None:
        subject, _ = _descriptor(document["subject"], "subject")
    artifact_type = document.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _invalid("artifactType must be a string")
    annotations = document.get("annotations")
    if annotations is not None and not _string_map(annotations):
        raise _invalid("annotations must map strings to strings")
    if not artifact_type and media_type in IMAGE_TYPES:
        artifact_type = config_media_type
    unique = tuple(dict.fromkeys(references))
    return ParsedManifest(media_type=media_type, references=unique, subject=subject,
                          artifact_type=artifact_type or None,
                          config_media_type=config_media_type,
                          annotations=annotations or None)
