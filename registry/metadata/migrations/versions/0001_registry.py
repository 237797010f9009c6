"""The registry as Berth kept it before Alembic: repositories and their settings, blobs,
manifests, tags, scan results, the outbox, leases, jobs, webhook deliveries.

Revision ID: 0001
Revises: 
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from registry.metadata.types import Flag, Id, Name, Timestamp  # noqa: F401

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('repositories',
    sa.Column('id', Id, sa.Identity(always=False), nullable=False),
    sa.Column('account', sa.Text(), nullable=False),
    sa.Column('name', Name(), nullable=False),
    sa.Column('created_at', Timestamp(), nullable=False),
    sa.Column('image_tag_mutability', sa.Text(), server_default='MUTABLE', nullable=False),
    sa.Column('mutability_filters', sa.Text(), nullable=True),
    sa.Column('scan_on_push', sa.Integer(), server_default='0', nullable=False),
    sa.Column('encryption_type', sa.Text(), server_default='AES256', nullable=False),
    sa.Column('kms_key', sa.Text(), nullable=True),
    sa.Column('policy_text', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account', 'name')
    )
    op.create_table('repository_tags',
    sa.Column('repository_id', Id, nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repository_id', 'key')
    )
    op.create_table('registry_settings',
    sa.Column('account', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', Timestamp(), nullable=False),
    sa.PrimaryKeyConstraint('account', 'name')
    )
    op.create_table('blobs',
    sa.Column('digest', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('created_at', Timestamp(), nullable=False),
    sa.PrimaryKeyConstraint('digest')
    )
    op.create_table('repository_blobs',
    sa.Column('repository_id', Id, nullable=False),
    sa.Column('digest', sa.Text(), nullable=False),
    sa.Column('linked_at', Timestamp(), nullable=False),
    sa.ForeignKeyConstraint(['digest'], ['blobs.digest'], ),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repository_id', 'digest')
    )
    op.create_index('repository_blobs_digest', 'repository_blobs', ['digest'], unique=False)
    op.create_table('manifests',
    sa.Column('repository_id', Id, nullable=False),
    sa.Column('digest', sa.Text(), nullable=False),
    sa.Column('media_type', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('artifact_type', sa.Text(), nullable=True),
    sa.Column('subject_digest', sa.Text(), nullable=True),
    sa.Column('annotations', sa.Text(), nullable=True),
    sa.Column('pushed_at', Timestamp(), nullable=False),
    sa.Column('last_pulled_at', Timestamp(), nullable=True),
    sa.ForeignKeyConstraint(['digest'], ['blobs.digest'], ),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repository_id', 'digest')
    )
    op.create_index('manifests_digest', 'manifests', ['digest'], unique=False)
    op.create_index('manifests_subject', 'manifests', ['repository_id', 'subject_digest'], unique=False)
    op.create_table('manifest_references',
    sa.Column('repository_id', Id, nullable=False),
    sa.Column('manifest_digest', sa.Text(), nullable=False),
    sa.Column('child_digest', sa.Text(), nullable=False),
    sa.Column('child_kind', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['repository_id', 'manifest_digest'], ['manifests.repository_id', 'manifests.digest'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repository_id', 'manifest_digest', 'child_digest')
    )
    op.create_index('manifest_references_child', 'manifest_references', ['repository_id', 'child_digest'], unique=False)
    op.create_table('tags',
    sa.Column('repository_id', Id, nullable=False),
    sa.Column('name', Name(), nullable=False),
    sa.Column('digest', sa.Text(), nullable=False),
    sa.Column('updated_at', Timestamp(), nullable=False),
    sa.ForeignKeyConstraint(['repository_id', 'digest'], ['manifests.repository_id', 'manifests.digest'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repository_id', 'name')
    )
    op.create_index('tags_digest', 'tags', ['repository_id', 'digest'], unique=False)
    op.create_table('scan_results',
    sa.Column('repository_id', Id, nullable=False),
    sa.Column('manifest_digest', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('scan_type', sa.Text(), server_default='BASIC', nullable=False),
    sa.Column('scanner', sa.Text(), nullable=True),
    sa.Column('scanner_version', sa.Text(), nullable=True),
    sa.Column('db_updated_at', Timestamp(), nullable=True),
    sa.Column('requested_at', Timestamp(), nullable=False),
    sa.Column('completed_at', Timestamp(), nullable=True),
    sa.Column('severity_counts', sa.Text(), nullable=True),
    sa.Column('findings', sa.Text(), nullable=True),
    sa.Column('os_family', sa.Text(), nullable=True),
    sa.Column('os_name', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repository_id', 'manifest_digest')
    )
    op.create_index('scan_results_db', 'scan_results', ['db_updated_at'], unique=False)
    op.create_table('outbox',
    sa.Column('id', Id, sa.Identity(always=False), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('created_at', Timestamp(), nullable=False),
    sa.Column('available_at', Timestamp(), nullable=False),
    sa.Column('priority', sa.Integer(), server_default='0', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('lease_owner', sa.Text(), nullable=True),
    sa.Column('lease_until', Timestamp(), nullable=True),
    sa.Column('done_at', Timestamp(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('outbox_pending', 'outbox', ['done_at', 'kind', 'priority', 'available_at'], unique=False)
    op.create_table('leases',
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('owner', sa.Text(), nullable=False),
    sa.Column('expires_at', Timestamp(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('jobs',
    sa.Column('id', Id, sa.Identity(always=False), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('priority', sa.Integer(), server_default='0', nullable=False),
    sa.Column('state', sa.Text(), server_default='queued', nullable=False),
    sa.Column('created_at', Timestamp(), nullable=False),
    sa.Column('available_at', Timestamp(), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('lease_owner', sa.Text(), nullable=True),
    sa.Column('lease_until', Timestamp(), nullable=True),
    sa.Column('done_at', Timestamp(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('source_event', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('jobs_done', 'jobs', ['done_at'], unique=False, sqlite_where=sa.text('done_at IS NOT NULL'), postgresql_where=sa.text('done_at IS NOT NULL'))
    op.create_index('jobs_ready', 'jobs', ['kind', 'priority', 'available_at'], unique=False, sqlite_where=sa.text('done_at IS NULL'), postgresql_where=sa.text('done_at IS NULL'))
    op.create_table('webhook_deliveries',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('event_id', sa.Text(), nullable=False),
    sa.Column('job_id', sa.BigInteger(), nullable=True),
    sa.Column('endpoint', sa.Text(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('detail_type', sa.Text(), nullable=False),
    sa.Column('account', sa.Text(), nullable=True),
    sa.Column('repository', sa.Text(), nullable=True),
    sa.Column('image_digest', sa.Text(), nullable=True),
    sa.Column('created_at', Timestamp(), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_attempt_at', Timestamp(), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('delivered_at', Timestamp(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('webhook_deliveries_created', 'webhook_deliveries', ['created_at'], unique=False)
    op.create_index('webhook_deliveries_job', 'webhook_deliveries', ['job_id'], unique=False)
    op.create_table('webhook_attempts',
    sa.Column('delivery_id', sa.Text(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('started_at', Timestamp(), nullable=False),
    sa.Column('duration_ms', sa.Float(), nullable=True),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['delivery_id'], ['webhook_deliveries.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('delivery_id', 'attempt')
    )


def downgrade() -> None:
    raise NotImplementedError("Berth migrations are forward-only")
