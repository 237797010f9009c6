"""The schema as Berth kept it before Alembic (SQLite only), frozen: never edit.

A database made then records the versions it applied in ``schema_migrations``. Adopting one
(``migrate._adopt_legacy``) first applies the versions it lacks from these lists, so it holds
exactly what Alembic revision 0002 creates, then records 0002 and lets Alembic go on.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "registry core", [
        """CREATE TABLE repositories (
            id INTEGER PRIMARY KEY,
            account TEXT NOT NULL,
            name TEXT NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (account, name))""",
        """CREATE TABLE blobs (
            digest TEXT PRIMARY KEY,
            size BIGINT NOT NULL,
            created_at REAL NOT NULL)""",
        """CREATE TABLE repository_blobs (
            repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
            digest TEXT NOT NULL REFERENCES blobs(digest),
            linked_at REAL NOT NULL,
            PRIMARY KEY (repository_id, digest))""",
        "CREATE INDEX repository_blobs_digest ON repository_blobs (digest)",
        """CREATE TABLE manifests (
            repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
            digest TEXT NOT NULL REFERENCES blobs(digest),
            media_type TEXT NOT NULL,
            size BIGINT NOT NULL,
            artifact_type TEXT,
            subject_digest TEXT,
            annotations TEXT,
            pushed_at REAL NOT NULL,
            last_pulled_at REAL,
            PRIMARY KEY (repository_id, digest))""",
        "CREATE INDEX manifests_subject ON manifests (repository_id, subject_digest)",
        "CREATE INDEX manifests_digest ON manifests (digest)",
        """CREATE TABLE manifest_references (
            repository_id INTEGER NOT NULL,
            manifest_digest TEXT NOT NULL,
            child_digest TEXT NOT NULL,
            child_kind TEXT NOT NULL,
            PRIMARY KEY (repository_id, manifest_digest, child_digest),
            FOREIGN KEY (repository_id, manifest_digest)
                REFERENCES manifests(repository_id, digest) ON DELETE CASCADE)""",
        "CREATE INDEX manifest_references_child ON manifest_references (repository_id, child_digest)",
        """CREATE TABLE tags (
            repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            digest TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (repository_id, name),
            FOREIGN KEY (repository_id, digest)
                REFERENCES manifests(repository_id, digest) ON DELETE CASCADE)""",
        "CREATE INDEX tags_digest ON tags (repository_id, digest)",
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at REAL NOT NULL,
            available_at REAL NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_until REAL,
            done_at REAL,
            last_error TEXT)""",
        "CREATE INDEX outbox_pending ON outbox (done_at, kind, priority, available_at)",
        """CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            expires_at REAL NOT NULL)""",
    ]),
    (2, "ecr repository settings, tags, registry settings", [
        "ALTER TABLE repositories ADD COLUMN image_tag_mutability TEXT NOT NULL DEFAULT 'MUTABLE'",
        "ALTER TABLE repositories ADD COLUMN mutability_filters TEXT",
        "ALTER TABLE repositories ADD COLUMN scan_on_push INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE repositories ADD COLUMN encryption_type TEXT NOT NULL DEFAULT 'AES256'",
        "ALTER TABLE repositories ADD COLUMN kms_key TEXT",
        "ALTER TABLE repositories ADD COLUMN policy_text TEXT",
        """CREATE TABLE repository_tags (
            repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (repository_id, key))""",
        """CREATE TABLE registry_settings (
            account TEXT NOT NULL,
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (account, name))""",
    ]),
    (3, "image scan results", [
        """CREATE TABLE scan_results (
            repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
            manifest_digest TEXT NOT NULL,
            status TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            scan_type TEXT NOT NULL DEFAULT 'BASIC',
            scanner TEXT,
            scanner_version TEXT,
            db_updated_at REAL,
            requested_at REAL NOT NULL,
            completed_at REAL,
            severity_counts TEXT,
            findings TEXT,
            os_family TEXT,
            os_name TEXT,
            PRIMARY KEY (repository_id, manifest_digest))""",
        "CREATE INDEX scan_results_db ON scan_results (db_updated_at)",
    ]),
    (50, "durable jobs and webhook deliveries", [
        # Jobs are work (scan an image, deliver a webhook); the outbox keeps facts (an image
        # was pushed). registry/events.py fans facts out into jobs; see its docstring.
        """CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL DEFAULT 'queued',
            created_at REAL NOT NULL,
            available_at REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_until REAL,
            done_at REAL,
            last_error TEXT,
            source_event INTEGER)""",
        "CREATE INDEX jobs_ready ON jobs (kind, priority DESC, available_at) WHERE done_at IS NULL",
        "CREATE INDEX jobs_done ON jobs (done_at) WHERE done_at IS NOT NULL",
        """CREATE TABLE webhook_deliveries (
            id TEXT PRIMARY KEY,
            event_id TEXT NOT NULL,
            job_id INTEGER,
            endpoint TEXT NOT NULL,
            url TEXT NOT NULL,
            detail_type TEXT NOT NULL,
            account TEXT,
            repository TEXT,
            image_digest TEXT,
            created_at REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_attempt_at REAL,
            last_status_code INTEGER,
            last_error TEXT,
            delivered_at REAL)""",
        "CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at)",
        "CREATE INDEX webhook_deliveries_job ON webhook_deliveries (job_id)",
        """CREATE TABLE webhook_attempts (
            delivery_id TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
            attempt INTEGER NOT NULL,
            started_at REAL NOT NULL,
            duration_ms REAL,
            status_code INTEGER,
            error TEXT,
            PRIMARY KEY (delivery_id, attempt))""",
        # Events recorded before any consumer existed describe history, not pending work:
        # fanning them out now would scan every old image and replay months of webhooks.
        "UPDATE outbox SET done_at = created_at WHERE done_at IS NULL",
    ]),
]


AUTH_MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (100, "identities: accounts, users, access keys, inline user policies", [
        """CREATE TABLE accounts (
            id TEXT PRIMARY KEY,
            created_at REAL NOT NULL)""",
        """CREATE TABLE users (
            id TEXT PRIMARY KEY,
            account TEXT NOT NULL REFERENCES accounts(id),
            name TEXT NOT NULL,
            arn TEXT NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (account, name))""",
        """CREATE TABLE access_keys (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            secret_ciphertext TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'Active' CHECK (status IN ('Active', 'Inactive')),
            created_at REAL NOT NULL)""",
        "CREATE INDEX access_keys_user ON access_keys (user_id)",
        """CREATE TABLE user_policies (
            user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            document TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (user_id, name))""",
    ]),
]
