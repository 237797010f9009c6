"""Row <-> value mapping shared by the metadata queries."""

from __future__ import annotations

import json
from typing import Any

from registry.metadata.models import ManifestRecord, Repository, RepositorySettings

MANIFEST_COLUMNS = ("digest, media_type, size, artifact_type, subject_digest, annotations, "
                     "pushed_at")

REPOSITORY_COLUMNS = ("id, account, name, created_at, image_tag_mutability, mutability_filters, "
                       "scan_on_push, encryption_type, kms_key, policy_text")


def repository_row(row: tuple[Any, ...] | None) -> Repository | None:
    if row is None:
        return None
    settings = RepositorySettings(image_tag_mutability=row[4],
                                  mutability_filters=tuple(json.loads(row[5] or "[]")),
                                  scan_on_push=bool(row[6]), encryption_type=row[7],
                                  kms_key=row[8])
    return Repository(id=row[0], account=row[1], name=row[2], created_at=row[3],
                      settings=settings, policy_text=row[9])


def manifest_row(row: tuple[Any, ...] | None) -> ManifestRecord | None:
    if row is None:
        return None
    annotations = json.loads(row[5]) if row[5] else None
    return ManifestRecord(digest=row[0], media_type=row[1], size=row[2], artifact_type=row[3],
                          subject_digest=row[4], annotations=annotations, pushed_at=row[6])
