"""Accounts, users, access keys (secrets stored encrypted) and inline user policies."""

from __future__ import annotations

from typing import Protocol

from registry.metadata.database import Database


class IdentityStore(Protocol):
    """The part of ``MetadataStore`` this module implements."""


class IdentityQueries:
    """``IdentityStore`` on a ``Database`` (``self.db``)."""

    db: Database
