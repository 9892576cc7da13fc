"""Mirror: manifests cached before their blobs, when each was last pulled, tag revalidation.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from dockyard.metadata.schema import ordered_string

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NOW = sa.DateTime(timezone=True)


def upgrade() -> None:
    # A constant server default fills the rows pushed before: none of them was cached.
    op.add_column(
        "manifests",
        sa.Column("cached", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "mirror_pulls",
        sa.Column("manifest_id", sa.Integer, sa.ForeignKey("manifests.id"), primary_key=True),
        sa.Column("pulled_at", NOW, nullable=False),
    )
    op.create_table(
        "mirror_tag_checks",
        sa.Column("repository", ordered_string(255), nullable=False),
        sa.Column("tag", ordered_string(128), nullable=False),
        sa.Column("checked_at", NOW, nullable=False),
        sa.PrimaryKeyConstraint("repository", "tag"),
    )


def downgrade() -> None:
    op.drop_table("mirror_tag_checks")
    op.drop_table("mirror_pulls")
    with op.batch_alter_table("manifests") as batch:
        batch.drop_column("cached")
