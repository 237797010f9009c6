"""How large an ECR request body may be, per operation, derived from the ECR model.

The ECR endpoint reads a body only after the SigV4 header checked out, and then no more than
its operation can legitimately need: a few tens of KiB for almost every operation, a policy
document's worth for the policy setters, a manifest for PutImage, and a 20 MiB part
(base64-encoded) only for UploadLayerPart. A larger body is refused before it is read when
its Content-Length says so, and as soon as the limit is passed otherwise.
"""

from __future__ import annotations

import math

from registry.ecr.validate import service_model

# Room for everything but the large members: names, ids, digests, lists of up to 100 ids
# (BatchGetImage with 100 image ids of 300-character tags is about 40 KiB).
BASE = 64 * 1024
# Tags per repository (ops_repositories) and AWS's documented key/value lengths (the model
# itself leaves tag strings unbounded).
MAX_TAGS, TAG_KEY_CHARS, TAG_VALUE_CHARS = 50, 128, 256


def _text(chars: int) -> int:
    """Bytes a string of ``chars`` characters can take on the wire: botocore's json.dumps
    writes every non-ASCII character as a 6-byte ``\\uXXXX`` escape."""
    return 6 * chars


def _base64(size: int) -> int:
    return 4 * math.ceil(size / 3)


def _member_max(operation: str, member: str) -> int:
    model = service_model("ecr")
    shapes = model["shapes"]
    input_shape = shapes[model["operations"][operation]["input"]["shape"]]
    return int(shapes[input_shape["members"][member]["shape"]]["max"])


def _limits() -> dict[str, int]:
    policy = BASE + _text(_member_max("SetRepositoryPolicy", "policyText"))
    tags = BASE + _text(MAX_TAGS * (TAG_KEY_CHARS + TAG_VALUE_CHARS))
    return {
        "UploadLayerPart": BASE + _base64(_member_max("UploadLayerPart", "layerPartBlob")),
        # A manifest is JSON, nearly always ASCII: escaping its quotes at most doubles it.
        "PutImage": BASE + 2 * _member_max("PutImage", "imageManifest"),
        "SetRepositoryPolicy": policy,
        "PutRegistryPolicy": BASE + _text(_member_max("PutRegistryPolicy", "policyText")),
        "CreateRepository": tags,
        "TagResource": tags,
        "UntagResource": BASE + _text(MAX_TAGS * TAG_KEY_CHARS),
        # 2 rules of 100 filters of 255 characters each, with their JSON around them.
        "PutRegistryScanningConfiguration": BASE + 2 * 100 * (255 + 64),
    }


LIMITS: dict[str, int] = _limits()


def body_limit(operation: str) -> int:
    """The largest body, in bytes, that ``operation`` accepts."""
    return LIMITS.get(operation, BASE)
