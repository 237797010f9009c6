"""Webhook deliveries and their attempts."""

from __future__ import annotations

from typing import Protocol

from registry.metadata.database import Database


class WebhookStore(Protocol):
    """The part of ``MetadataStore`` this module implements."""


class WebhookQueries:
    """``WebhookStore`` on a ``Database`` (``self.db``)."""

    db: Database
