"""Repositories and their settings (ECR's CreateRepository fields, policy text, resource tags), registry settings, repository listing."""

from __future__ import annotations

from typing import Protocol

from registry.metadata.database import Database


class RepositoryStore(Protocol):
    """The part of ``MetadataStore`` this module implements."""


class RepositoryQueries:
    """``RepositoryStore`` on a ``Database`` (``self.db``)."""

    db: Database
