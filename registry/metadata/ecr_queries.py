"""Metadata for the ECR control plane: repository settings, policies, tags, image listings,
registry-level settings. Mixed into ``SQLiteMetadataStore``; plain SQL both databases accept.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, Sequence

from registry.metadata.models import Event, ImageRow, Repository, RepositorySettings
from registry.metadata.rows import MANIFEST_COLUMNS, REPOSITORY_COLUMNS, manifest_row, repository_row

REPOSITORY_TAG_LIMIT = 50


class RepositoryExistsError(LookupError):
    pass


class RepositoryNotEmptyError(ValueError):
    pass


class TooManyTagsError(ValueError):
    pass


class ECRQueries:
    """Requires ``_read``, ``_read_one``, ``transaction`` and ``get_repository`` of the store."""

    async def create_repository(self, account: str, name: str, settings: RepositorySettings,
                                tags: Sequence[tuple[str, str]] = ()) -> Repository:
        """Raises: RepositoryExistsError, TooManyTagsError."""
        if len(dict(tags)) > REPOSITORY_TAG_LIMIT:
            raise TooManyTagsError(name)

        def create(conn: sqlite3.Connection) -> None:
            exists = conn.execute("SELECT 1 FROM repositories WHERE account = ? AND name = ?",
                                  (account, name)).fetchone()
            if exists:
                raise RepositoryExistsError(name)
            cur = conn.execute(
                "INSERT INTO repositories (account, name, created_at, image_tag_mutability, "
                "mutability_filters, scan_on_push, encryption_type, kms_key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (account, name, time.time(), settings.image_tag_mutability,
                 json.dumps(list(settings.mutability_filters)), int(settings.scan_on_push),
                 settings.encryption_type, settings.kms_key))
            conn.executemany("INSERT INTO repository_tags (repository_id, key, value) "
                             "VALUES (?, ?, ?)", [(cur.lastrowid, k, v) for k, v in dict(tags).items()])

        await self.transaction(create)
        repo = await self.get_repository(account, name)
        assert repo is not None
        return repo

    async def delete_repository(self, repository: Repository, *, force: bool,
                                events: Sequence[Event]) -> None:
        """Raises: RepositoryNotEmptyError when images remain and ``force`` is false."""
        def delete(conn: sqlite3.Connection) -> None:
            if not force and conn.execute("SELECT 1 FROM manifests WHERE repository_id = ? "
                                          "LIMIT 1", (repository.id,)).fetchone():
                raise RepositoryNotEmptyError(repository.name)
            conn.execute("DELETE FROM repositories WHERE id = ?", (repository.id,))
            self._add_events(conn, events)

        await self.transaction(delete)

    async def get_repository_by_id(self, repository_id: int) -> Repository | None:
        return repository_row(self._read_one(f"SELECT {REPOSITORY_COLUMNS} FROM repositories "
                                             "WHERE id = ?", (repository_id,)))

    async def describe_repositories(self, account: str, *, after: str | None, limit: int,
                                    skip: int = 0) -> list[Repository]:
        """Repositories after ``after`` in name order, passing over the first ``skip``."""
        rows = self._read(f"SELECT {REPOSITORY_COLUMNS} FROM repositories WHERE account = ? "
                          "AND name > ? ORDER BY name LIMIT ? OFFSET ?",
                          (account, after or "", limit, skip))
        return [r for r in map(repository_row, rows) if r is not None]

    async def update_repository(self, repository_id: int, **fields: Any) -> None:
        columns = {"image_tag_mutability", "mutability_filters", "scan_on_push", "policy_text"}
        assert set(fields) <= columns, fields
        if "mutability_filters" in fields:
            fields["mutability_filters"] = json.dumps(list(fields["mutability_filters"]))
        if "scan_on_push" in fields:
            fields["scan_on_push"] = int(fields["scan_on_push"])
        assignments = ", ".join(f"{column} = ?" for column in fields)

        def update(conn: sqlite3.Connection) -> None:
            conn.execute(f"UPDATE repositories SET {assignments} WHERE id = ?",
                         (*fields.values(), repository_id))

        await self.transaction(update)

    async def repository_tags(self, repository_id: int) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self._read("SELECT key, value FROM repository_tags WHERE "
                                              "repository_id = ? ORDER BY key", (repository_id,))]

    async def tag_repository(self, repository_id: int, tags: Sequence[tuple[str, str]]) -> None:
        """Raises: TooManyTagsError (nothing changed)."""
        def tag(conn: sqlite3.Connection) -> None:
            existing = {r[0] for r in conn.execute(
                "SELECT key FROM repository_tags WHERE repository_id = ?", (repository_id,))}
            if len(existing | {k for k, _ in tags}) > REPOSITORY_TAG_LIMIT:
                raise TooManyTagsError(str(repository_id))
            conn.executemany("INSERT INTO repository_tags (repository_id, key, value) VALUES "
                             "(?, ?, ?) ON CONFLICT (repository_id, key) DO UPDATE SET "
                             "value = excluded.value", [(repository_id, k, v) for k, v in tags])

        await self.transaction(tag)

    async def untag_repository(self, repository_id: int, keys: Sequence[str]) -> None:
        def untag(conn: sqlite3.Connection) -> None:
            conn.executemany("DELETE FROM repository_tags WHERE repository_id = ? AND key = ?",
                             [(repository_id, k) for k in keys])

        await self.transaction(untag)

    async def get_setting(self, account: str, name: str) -> str | None:
        row = self._read_one("SELECT value FROM registry_settings WHERE account = ? AND name = ?",
                             (account, name))
        return row[0] if row else None

    async def put_setting(self, account: str, name: str, value: str | None) -> bool:
        """Set (or, with None, delete) a registry setting; returns whether one existed."""
        def put(conn: sqlite3.Connection) -> bool:
            existed = conn.execute("SELECT 1 FROM registry_settings WHERE account = ? AND "
                                   "name = ?", (account, name)).fetchone() is not None
            if value is None:
                conn.execute("DELETE FROM registry_settings WHERE account = ? AND name = ?",
                             (account, name))
            else:
                conn.execute("INSERT INTO registry_settings (account, name, value, updated_at) "
                             "VALUES (?, ?, ?, ?) ON CONFLICT (account, name) DO UPDATE SET "
                             "value = excluded.value, updated_at = excluded.updated_at",
                             (account, name, value, time.time()))
            return existed

        return await self.transaction(put)

    async def list_images(self, repository_id: int) -> list[ImageRow]:
        """Every manifest of a repository with its tags, ordered by digest."""
        rows = self._read(f"SELECT {MANIFEST_COLUMNS}, last_pulled_at FROM manifests "
                          "WHERE repository_id = ? ORDER BY digest", (repository_id,))
        tags: dict[str, list[str]] = {}
        for name, digest in self._read("SELECT name, digest FROM tags WHERE repository_id = ? "
                                       "ORDER BY name", (repository_id,)):
            tags.setdefault(digest, []).append(name)
        images = []
        for row in rows:
            manifest = manifest_row(row[:-1])
            assert manifest is not None
            images.append(ImageRow(manifest, tuple(tags.get(manifest.digest, ())), row[-1]))
        return images

    async def manifest_size_with_layers(self, repository_id: int, digest: str) -> int:
        """ECR's imageSizeInBytes: the sum of the blobs the manifest references."""
        row = self._read_one(
            "SELECT COALESCE(SUM(b.size), 0) FROM manifest_references r JOIN blobs b "
            "ON b.digest = r.child_digest WHERE r.repository_id = ? AND r.manifest_digest = ? "
            "AND r.child_kind = 'blob'", (repository_id, digest))
        return int(row[0]) if row else 0

    async def record_pull(self, repository_id: int, digest: str) -> None:
        def record(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE manifests SET last_pulled_at = ? WHERE repository_id = ? "
                         "AND digest = ?", (time.time(), repository_id, digest))

        await self.transaction(record)
