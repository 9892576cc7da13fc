"""Maintenance: blob state for the GC protocol, job leases, run-time settings.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

NOW = sa.DateTime(timezone=True)


def upgrade() -> None:
    # A constant server default is valid DDL on both SQLite and PostgreSQL, and fills old rows.
    # No index on state: SQLite would pick it for GC's scan in digest order and sort every
    # batch; the few 'deleting' rows are found by one scan per GC run.
    op.add_column(
        "blobs",
        sa.Column("state", sa.String(16), nullable=False, server_default="live"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(255), nullable=True),
        sa.Column("expires_at", NOW, nullable=True),
        sa.Column("finished_at", NOW, nullable=True),
    )
    op.create_table(
        "settings",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", NOW, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("settings")
    op.drop_table("leases")
    with op.batch_alter_table("blobs") as batch:
        batch.drop_column("state")
