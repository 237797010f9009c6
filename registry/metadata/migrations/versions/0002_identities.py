"""Identities: accounts, users, access keys (secrets encrypted), inline user policies.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from registry.metadata.types import Flag, Id, Name, Timestamp  # noqa: F401

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('created_at', Timestamp(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('users',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('account', sa.Text(), nullable=False),
    sa.Column('name', Name(), nullable=False),
    sa.Column('arn', sa.Text(), nullable=False),
    sa.Column('created_at', Timestamp(), nullable=False),
    sa.ForeignKeyConstraint(['account'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account', 'name')
    )
    op.create_table('access_keys',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('user_id', sa.Text(), nullable=False),
    sa.Column('secret_ciphertext', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), server_default='Active', nullable=False),
    sa.Column('created_at', Timestamp(), nullable=False),
    sa.CheckConstraint("status IN ('Active', 'Inactive')", name='access_keys_status'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('access_keys_user', 'access_keys', ['user_id'], unique=False)
    op.create_table('user_policies',
    sa.Column('user_id', sa.Text(), nullable=False),
    sa.Column('name', Name(), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('updated_at', Timestamp(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'name')
    )


def downgrade() -> None:
    raise NotImplementedError("Berth migrations are forward-only")
