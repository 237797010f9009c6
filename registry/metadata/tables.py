"""Every table Berth persists, as SQLAlchemy Core ``Table`` objects: the one schema that the
queries of both backends are written against.

The migration history (``registry/metadata/migrations/versions``) builds exactly this schema
on SQLite and on PostgreSQL; ``tests/metadata/test_migrations.py`` compares the two. Change a
table here only together with a new migration.

Groups:
    registry     repositories, repository_tags, registry_settings, blobs, repository_blobs,
                 manifests, manifest_references, tags, scan_results
    identities   accounts, users, access_keys, user_policies
    work         events, event_consumers, jobs, nodes, leases
    webhooks     webhook_deliveries, webhook_attempts
"""

from __future__ import annotations

import sqlalchemy as sa

from registry.metadata.types import Flag, Id, Name, Timestamp

metadata = sa.MetaData()

# -- registry -------------------------------------------------------------------------------

repositories = sa.Table(
    "repositories", metadata,
    sa.Column("id", Id, sa.Identity(), primary_key=True),
    sa.Column("account", sa.Text, nullable=False),
    sa.Column("name", Name(), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("image_tag_mutability", sa.Text, nullable=False, server_default="MUTABLE"),
    sa.Column("mutability_filters", sa.Text),
    sa.Column("scan_on_push", Flag, nullable=False, server_default="0"),
    sa.Column("encryption_type", sa.Text, nullable=False, server_default="AES256"),
    sa.Column("kms_key", sa.Text),
    sa.Column("policy_text", sa.Text),
    sa.UniqueConstraint("account", "name"),
)

repository_tags = sa.Table(
    "repository_tags", metadata,
    sa.Column("repository_id", Id, sa.ForeignKey("repositories.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

registry_settings = sa.Table(
    "registry_settings", metadata,
    sa.Column("account", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

blobs = sa.Table(
    "blobs", metadata,
    sa.Column("digest", sa.Text, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

repository_blobs = sa.Table(
    "repository_blobs", metadata,
    sa.Column("repository_id", Id, sa.ForeignKey("repositories.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("digest", sa.Text, sa.ForeignKey("blobs.digest"), primary_key=True),
    sa.Column("linked_at", Timestamp, nullable=False),
    sa.Index("repository_blobs_digest", "digest"),
)

manifests = sa.Table(
    "manifests", metadata,
    sa.Column("repository_id", Id, sa.ForeignKey("repositories.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("digest", sa.Text, sa.ForeignKey("blobs.digest"), primary_key=True),
    sa.Column("media_type", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("artifact_type", sa.Text),
    sa.Column("subject_digest", sa.Text),
    sa.Column("annotations", sa.Text),
    sa.Column("pushed_at", Timestamp, nullable=False),
    sa.Column("last_pulled_at", Timestamp),
    sa.Index("manifests_subject", "repository_id", "subject_digest"),
    sa.Index("manifests_digest", "digest"),
)

manifest_references = sa.Table(
    "manifest_references", metadata,
    sa.Column("repository_id", Id, primary_key=True),
    sa.Column("manifest_digest", sa.Text, primary_key=True),
    sa.Column("child_digest", sa.Text, primary_key=True),
    sa.Column("child_kind", sa.Text, nullable=False),
    sa.ForeignKeyConstraint(["repository_id", "manifest_digest"],
                            ["manifests.repository_id", "manifests.digest"], ondelete="CASCADE"),
    sa.Index("manifest_references_child", "repository_id", "child_digest"),
)

tags = sa.Table(
    "tags", metadata,
    sa.Column("repository_id", Id, sa.ForeignKey("repositories.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("name", Name(), primary_key=True),
    sa.Column("digest", sa.Text, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.ForeignKeyConstraint(["repository_id", "digest"],
                            ["manifests.repository_id", "manifests.digest"], ondelete="CASCADE"),
    sa.Index("tags_digest", "repository_id", "digest"),
)

scan_results = sa.Table(
    "scan_results", metadata,
    sa.Column("repository_id", Id, sa.ForeignKey("repositories.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("manifest_digest", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("scan_type", sa.Text, nullable=False, server_default="BASIC"),
    sa.Column("scanner", sa.Text),
    sa.Column("scanner_version", sa.Text),
    sa.Column("db_updated_at", Timestamp),
    sa.Column("requested_at", Timestamp, nullable=False),
    sa.Column("completed_at", Timestamp),
    sa.Column("severity_counts", sa.Text),
    sa.Column("findings", sa.Text),
    sa.Column("os_family", sa.Text),
    sa.Column("os_name", sa.Text),
    sa.Index("scan_results_db", "db_updated_at"),
)

# -- identities -----------------------------------------------------------------------------

accounts = sa.Table(
    "accounts", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False),
)

users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("account", sa.Text, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("name", Name(), nullable=False),
    sa.Column("arn", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.UniqueConstraint("account", "name"),
)

access_keys = sa.Table(
    "access_keys", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("secret_ciphertext", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="Active"),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.CheckConstraint("status IN ('Active', 'Inactive')", name="access_keys_status"),
    sa.Index("access_keys_user", "user_id"),
)

user_policies = sa.Table(
    "user_policies", metadata,
    sa.Column("user_id", sa.Text, sa.ForeignKey("users.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("name", Name(), primary_key=True),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

# -- work: the event log, its consumers, jobs, nodes, leases ---------------------------------

events = sa.Table(
    # Facts ("image.pushed"), appended in the transaction of the change they describe. Ids
    # are never reused (AUTOINCREMENT on SQLite, an identity on PostgreSQL) and commit in id
    # order (writers take the event lock first, see queries/events.py), so a consumer's
    # cursor "everything up to id N" never skips a late commit.
    "events", metadata,
    sa.Column("id", Id, sa.Identity(), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sqlite_autoincrement=True,
)

event_consumers = sa.Table(
    # One cursor per consumer (scanner, webhooks, replication, ...): the last event id it
    # has consumed. Events at or below every cursor may be pruned.
    "event_consumers", metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

jobs = sa.Table(
    "jobs", metadata,
    sa.Column("id", Id, sa.Identity(), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("state", sa.Text, nullable=False, server_default="queued"),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("available_at", Timestamp, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.Text),
    sa.Column("lease_until", Timestamp),
    sa.Column("done_at", Timestamp),
    sa.Column("last_error", sa.Text),
    sa.Column("source_event", sa.BigInteger),
    # The same event never yields two jobs of one kind: (kind, idempotency_key) is unique.
    sa.Column("idempotency_key", sa.Text),
    sa.Index("jobs_ready", "kind", "priority", "available_at",
             sqlite_where=sa.text("done_at IS NULL"),
             postgresql_where=sa.text("done_at IS NULL")),
    sa.Index("jobs_done", "done_at", sqlite_where=sa.text("done_at IS NOT NULL"),
             postgresql_where=sa.text("done_at IS NOT NULL")),
    sa.Index("jobs_idempotency", "kind", "idempotency_key", unique=True),
    sqlite_autoincrement=True,
)

nodes = sa.Table(
    # A running Berth process: a random id per process start, renewed by heartbeats. Job
    # leases name their node; a node whose heartbeat stopped is dead, wherever it ran.
    "nodes", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("hostname", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("heartbeat_at", Timestamp, nullable=False),
)

leases = sa.Table(
    "leases", metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
)

# -- webhooks ---------------------------------------------------------------------------------

webhook_deliveries = sa.Table(
    "webhook_deliveries", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("job_id", sa.BigInteger),
    sa.Column("endpoint", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("detail_type", sa.Text, nullable=False),
    sa.Column("account", sa.Text),
    sa.Column("repository", sa.Text),
    sa.Column("image_digest", sa.Text),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_attempt_at", Timestamp),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("delivered_at", Timestamp),
    sa.Index("webhook_deliveries_created", "created_at"),
    sa.Index("webhook_deliveries_job", "job_id"),
)

webhook_attempts = sa.Table(
    "webhook_attempts", metadata,
    sa.Column("delivery_id", sa.Text, sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("duration_ms", sa.Float),
    sa.Column("status_code", sa.Integer),
    sa.Column("error", sa.Text),
)
