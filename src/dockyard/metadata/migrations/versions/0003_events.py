"""Event outbox: recorded events, their commit-order counter, per-endpoint delivery state.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

NOW = sa.DateTime(timezone=True)
SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    counter = op.create_table(
        "event_counter",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", SEQUENCE, nullable=False),
    )
    op.bulk_insert(counter, [{"name": "events", "value": 0}])
    op.create_table(
        "events",
        sa.Column("seq", SEQUENCE, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("media_type", sa.String(255), nullable=True),
        sa.Column("created_at", NOW, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
    )
    op.create_index("ix_events_created_at", "events", ["created_at"])
    op.create_table(
        "event_endpoints",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("last_seq", SEQUENCE, nullable=False),
        sa.Column("delivered", SEQUENCE, nullable=False, server_default="0"),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_success_at", NOW, nullable=True),
        sa.Column("last_failure_at", NOW, nullable=True),
        sa.Column("next_attempt_at", NOW, nullable=True),
        sa.Column("lease_holder", sa.String(255), nullable=True),
        sa.Column("lease_expires_at", NOW, nullable=True),
    )
    op.create_table(
        "event_dead_letters",
        sa.Column("endpoint", sa.String(255), nullable=False),
        sa.Column("seq", SEQUENCE, nullable=False),
        sa.Column("failed_at", NOW, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("replay_at", NOW, nullable=True),
        sa.PrimaryKeyConstraint("endpoint", "seq"),
    )
    op.create_index("ix_event_dead_letters_seq", "event_dead_letters", ["seq"])


def downgrade() -> None:
    for table in ("event_dead_letters", "event_endpoints", "events", "event_counter"):
        op.drop_table(table)
