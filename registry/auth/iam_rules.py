"""IAM-style names, limits and errors for Berth's identities (users, keys, policies)."""

from __future__ import annotations

import re
from typing import Sequence

from policies import PolicyError, PolicyKind, Problem, parse_policy

MAX_ACCESS_KEYS_PER_USER = 2
# All used with fullmatch; ASCII only (`\d` alone would accept other scripts' digits).
ACCOUNT_ID = re.compile(r"[0-9]{12}")
USER_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
POLICY_NAME = re.compile(r"[\w+=,.@-]{1,128}", re.ASCII)
ACCESS_KEY_ID = re.compile(r"AKIA[A-Z2-7]{16}")
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_SECRET_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


# -- errors ------------------------------------------------------------------------------------

class IdentityError(Exception):
    """Base of the IAM-style errors; ``code`` is IAM's error code, ``status`` its HTTP status."""

    code = "ServiceFailure"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoSuchEntity(IdentityError):
    code, status = "NoSuchEntity", 404


class EntityAlreadyExists(IdentityError):
    code, status = "EntityAlreadyExists", 409


class LimitExceeded(IdentityError):
    code, status = "LimitExceeded", 409


class DeleteConflict(IdentityError):
    code, status = "DeleteConflict", 409


class ValidationError(IdentityError):
    code, status = "ValidationError", 400


class MalformedPolicyDocument(IdentityError):
    """The document is not a valid identity policy; ``problems`` lists every problem with its
    element path (``Statement[0].Effect``)."""

    code, status = "MalformedPolicyDocument", 400

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


def _check(pattern: re.Pattern[str], value: str, member: str, shown: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValidationError(f"1 validation error detected: Value {value!r} at {member!r} "
                              f"failed to satisfy constraint: Member must satisfy regular "
                              f"expression pattern: {shown}")


def _check_account(account: str) -> None:
    _check(ACCOUNT_ID, account, "account", r"[0-9]{12}")


def _check_user_name(name: str) -> None:
    _check(USER_NAME, name, "userName", r"[\w+=,.@-]{1,64}")


def _check_policy_name(name: str) -> None:
    _check(POLICY_NAME, name, "policyName", r"[\w+=,.@-]{1,128}")


def validate_identity_policy(document: str, *, name: str) -> None:
    """Raise ``MalformedPolicyDocument`` unless ``document`` is a valid identity policy."""
    try:
        parse_policy(document, kind=PolicyKind.IDENTITY, name=name)
    except PolicyError as exc:
        raise MalformedPolicyDocument(exc.problems) from None
