"""Image scan results and scan requests."""

from __future__ import annotations

from typing import Protocol

from registry.metadata.database import Database


class ScanStore(Protocol):
    """The part of ``MetadataStore`` this module implements."""


class ScanQueries:
    """``ScanStore`` on a ``Database`` (``self.db``)."""

    db: Database
