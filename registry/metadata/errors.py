"""Domain errors of the metadata store. The wire layers (OCI, ECR) map them, each in one place."""

from __future__ import annotations

from registry.metadata.models import (  # noqa: F401 - re-exported: the store's error family
    MissingReferencesError, RepositoryExistsError, RepositoryNotEmptyError,
    RepositoryNotFoundError, StillReferencedError, TooManyTagsError,
)


class StoreError(Exception):
    """The metadata database refused or failed an operation; nothing was changed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StoreUnavailableError(StoreError):
    """The database cannot take writes or answer now (disk full, unreachable); retry later."""


class StoreBusyError(StoreError):
    """The database stayed locked or reported a conflict; the request may simply be retried."""
