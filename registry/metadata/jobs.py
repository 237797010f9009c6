"""Durable jobs with leases, nodes with heartbeats, named leases."""

from __future__ import annotations

from typing import Protocol

from registry.metadata.database import Database


class JobStore(Protocol):
    """The part of ``MetadataStore`` this module implements."""


class JobQueries:
    """``JobStore`` on a ``Database`` (``self.db``)."""

    db: Database
