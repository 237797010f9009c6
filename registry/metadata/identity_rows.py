"""Rows and refusals of the identity store (``identities.py``), as plain values."""

from __future__ import annotations

from dataclasses import dataclass


# -- rows -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class User:
    id: str  # "AIDA" + 17 characters
    account: str
    name: str
    arn: str  # arn:aws:iam::<account>:user/<name>
    created_at: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class AccessKey:
    id: str  # "AKIA" + 16 characters
    user_name: str
    account: str
    status: str  # "Active" | "Inactive"
    created_at: float


@dataclass(frozen=True, slots=True)
class NewAccessKey:
    """A key the identity service made: ``sealed_secret`` is the encrypted secret, as text."""

    id: str
    sealed_secret: str
    created_at: float


# -- errors -----------------------------------------------------------------------------------

class IdentityStoreError(Exception):
    """Base of the identity store's refusals; nothing was changed."""


class NoSuchUserError(IdentityStoreError, LookupError):
    def __init__(self, account: str, name: str) -> None:
        super().__init__(f"no user {name!r} in account {account}")
        self.account, self.name = account, name


class NoSuchAccessKeyError(IdentityStoreError, LookupError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"no access key {key_id} for this user")
        self.key_id = key_id


class NoSuchUserPolicyError(IdentityStoreError, LookupError):
    def __init__(self, policy_name: str) -> None:
        super().__init__(f"no inline policy {policy_name!r} for this user")
        self.policy_name = policy_name


class UserExistsError(IdentityStoreError):
    def __init__(self, account: str, name: str) -> None:
        super().__init__(f"user {name!r} exists in account {account}")
        self.account, self.name = account, name


class AccessKeyLimitError(IdentityStoreError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"a user has at most {limit} access keys")
        self.limit = limit


class UserInUseError(IdentityStoreError):
    """A user still has ``what`` ("access keys" or "policies")."""

    def __init__(self, what: str) -> None:
        super().__init__(f"the user still has {what}")
        self.what = what
