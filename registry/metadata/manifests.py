"""Blobs linked into repositories, manifests, tags, references and referrers: what a push writes and a pull reads; image listing pages; deletes that respect references."""

from __future__ import annotations

from typing import Protocol

from registry.metadata.database import Database


class ManifestStore(Protocol):
    """The part of ``MetadataStore`` this module implements."""


class ManifestQueries:
    """``ManifestStore`` on a ``Database`` (``self.db``)."""

    db: Database
