"""The event log: append events in a change's transaction; consumers read them through their own cursors."""

from __future__ import annotations

from typing import Protocol

from registry.metadata.database import Database


class EventLogStore(Protocol):
    """The part of ``MetadataStore`` this module implements."""


class EventLogQueries:
    """``EventLogStore`` on a ``Database`` (``self.db``)."""

    db: Database
