"""Server-side input validation driven by the ECR service model botocore ships.

botocore checks only ``required``, ``min`` and types client-side; ``max``, ``pattern`` and
``enum`` are the server's job (reference 1.4). Rather than hand-copying hundreds of limits,
this walks the shapes of ``botocore/data/ecr/*/service-2.json`` and reports the first broken
constraint in ECR's wording.
"""

from __future__ import annotations

import base64
import binascii
import re
from functools import lru_cache
from typing import Any

import botocore.loaders

from policies.jsondoc import JsonTextError, strict_loads
from registry.ecr.errors import ECRError, SerializationException, invalid_parameter


# The deepest ECR input (PutReplicationConfiguration, PutSigningConfiguration) nests 6 levels.
MAX_JSON_DEPTH = 32


def load_params(body: bytes) -> Any:
    """The request body's JSON value (``{}`` for an empty body), parsed strictly.

    Raises:
        SerializationException: not UTF-8 strict JSON (too deep, a huge integer, a lone
            surrogate, ...); says why.
    """
    try:
        return strict_loads(body or b"{}", max_depth=MAX_JSON_DEPTH)
    except JsonTextError as exc:
        raise SerializationException(f"Request body is not valid JSON: {exc}") from None


@lru_cache(maxsize=None)
def service_model(service: str = "ecr") -> dict[str, Any]:
    return botocore.loaders.Loader().load_service_model(service, "service-2")


@lru_cache(maxsize=4096)
def _pattern(regex: str) -> re.Pattern[str]:
    return re.compile(regex)


class Validator:
    def __init__(self, model: dict[str, Any]) -> None:
        self.shapes = model["shapes"]
        self.operations = model["operations"]

    def validate(self, operation: str, params: Any) -> None:
        """Raises: InvalidParameterException or SerializationException."""
        input_shape = self.operations[operation].get("input")
        if input_shape is None:
            return
        self._check(input_shape["shape"], params, "")

    def _check(self, shape_name: str, value: Any, path: str) -> None:
        shape = self.shapes[shape_name]
        kind = shape["type"]
        check = getattr(self, f"_check_{kind}", None)
        if check is not None:
            check(shape, value, path)

    @staticmethod
    def _type_error(path: str, expected: str) -> ECRError:
        where = path or "request"
        return SerializationException(f"Expected {expected} at '{where}'")

    def _check_structure(self, shape: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise self._type_error(path, "an object")
        for required in shape.get("required", ()):
            if value.get(required) is None:
                raise invalid_parameter(_join(path, required), "Member must not be null")
        members = shape.get("members", {})
        for key, item in value.items():
            member = members.get(key)
            if member is None or item is None:
                continue  # unknown members are ignored, as AWS does
            self._check(member["shape"], item, _join(path, key))

    def _check_list(self, shape: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise self._type_error(path, "a list")
        _length(shape, len(value), path, "Member must have length")
        for index, item in enumerate(value):
            self._check(shape["member"]["shape"], item, f"{path}.{index + 1}.member")

    def _check_map(self, shape: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise self._type_error(path, "a map")
        _length(shape, len(value), path, "Member must have length")
        for key, item in value.items():
            self._check(shape["key"]["shape"], key, f"{path}.key")
            self._check(shape["value"]["shape"], item, f"{path}.{key}")

    def _check_string(self, shape: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise self._type_error(path, "a string")
        _length(shape, len(value), path, "Member must have length")
        enum = shape.get("enum")
        if enum is not None and value not in enum:
            raise invalid_parameter(path, "Member must satisfy enum value set: ["
                                    + ", ".join(enum) + "]")
        pattern = shape.get("pattern")
        if pattern is not None and not _pattern(pattern).fullmatch(value):
            raise invalid_parameter(path, f"must satisfy regular expression '{pattern}'")

    def _check_integer(self, shape: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._type_error(path, "an integer")
        if "min" in shape and value < shape["min"]:
            raise invalid_parameter(path, f"Member must have value greater than or equal to "
                                          f"{shape['min']}")
        if "max" in shape and value > shape["max"]:
            raise invalid_parameter(path, f"Member must have value less than or equal to "
                                          f"{shape['max']}")

    _check_long = _check_integer

    def _check_boolean(self, shape: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, bool):
            raise self._type_error(path, "a boolean")

    def _check_blob(self, shape: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise self._type_error(path, "a base64 string")
        try:
            size = len(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            raise SerializationException(f"Invalid base64 at '{path}'") from None
        _length(shape, size, path, "Member must have length")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _length(shape: dict[str, Any], size: int, path: str, prefix: str) -> None:
    if "min" in shape and size < shape["min"]:
        raise invalid_parameter(path, f"{prefix} greater than or equal to {shape['min']}")
    if "max" in shape and size > shape["max"]:
        raise invalid_parameter(path, f"{prefix} less than or equal to {shape['max']}")


@lru_cache(maxsize=None)
def validator(service: str = "ecr") -> Validator:
    return Validator(service_model(service))
