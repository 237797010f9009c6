"""Rows of the metadata store, as immutable values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RepositorySettings:
    """What ECR's CreateRepository sets (reference 2.2); defaults are ECR's."""

    image_tag_mutability: str = "MUTABLE"
    mutability_filters: tuple[str, ...] = ()
    scan_on_push: bool = False
    encryption_type: str = "AES256"
    kms_key: str | None = None


@dataclass(frozen=True, slots=True)
class Repository:
    id: int
    account: str
    name: str
    created_at: float
    settings: RepositorySettings = field(default_factory=RepositorySettings)
    policy_text: str | None = None


@dataclass(frozen=True, slots=True)
class Reference:
    """A descriptor a manifest points at that must exist in the same repository."""

    digest: str
    kind: str  # "blob" or "manifest"


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None = None
    subject_digest: str | None = None
    annotations: dict[str, str] | None = None
    references: tuple[Reference, ...] = ()
    pushed_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ImageRow:
    """A manifest with its tags, for ListImages/DescribeImages."""

    manifest: ManifestRecord
    tags: tuple[str, ...]
    last_pulled_at: float | None
    size_with_layers: int = 0  # ECR's imageSizeInBytes: the blobs the manifest references


@dataclass(frozen=True, slots=True)
class Event:
    """A fact for the event log, written in the same transaction as the change it describes.
    (``priority`` is not stored: the jobs a consumer makes of an event carry their own.)"""

    kind: str  # "image.pushed", "image.deleted", ...
    payload: dict[str, Any] = field(default_factory=dict)
    priority: int = 0


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An event as the log holds it, handed to consumers' subscribers."""

    id: int
    kind: str
    payload: dict[str, Any]
    created_at: float


class MissingReferencesError(LookupError):
    def __init__(self, missing: list[Reference]) -> None:
        self.missing = missing
        super().__init__(", ".join(r.digest for r in missing))


class RepositoryNotFoundError(LookupError):
    pass


class StillReferencedError(ValueError):
    """A delete refused because manifests of the repository still reference the target
    (ECR's ImageReferencedByManifestList); nothing was changed."""

    def __init__(self, digest: str, referenced_by: list[str]) -> None:
        self.digest = digest
        self.referenced_by = referenced_by
        super().__init__(f"{digest} is referenced by {', '.join(referenced_by)}")


class RepositoryExistsError(LookupError):
    """CreateRepository on a name the account already has; nothing was changed."""


class RepositoryNotEmptyError(ValueError):
    """DeleteRepository without force on a repository that still holds images."""


class TooManyTagsError(ValueError):
    """A repository would carry more resource tags than ECR allows (50); nothing changed."""


@dataclass(frozen=True, slots=True)
class TagDeletion:
    digest: str  # the manifest the tag pointed at when it was deleted
    manifest_deleted: bool  # it was the image's last tag and nothing referenced the image
