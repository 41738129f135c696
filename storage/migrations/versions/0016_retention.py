"""retention: a camera's own retention period, and the record of each expired original

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from storage.types import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("camera", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retention_days", sa.Integer(), nullable=True))
    op.create_table(
        "originalexpiry",
        sa.Column("original_id", sa.Integer(), nullable=False),
        sa.Column("camera_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("start_utc", UTCDateTime(), nullable=False),
        sa.Column("end_utc", UTCDateTime(), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("stage", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("derived_sha256", sa.JSON(), nullable=False),
        sa.Column("marked_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["camera_id"], ["camera.id"]),
        sa.ForeignKeyConstraint(["original_id"], ["original.id"]),
        sa.PrimaryKeyConstraint("original_id"),
    )
    op.create_index("ix_originalexpiry_camera_id", "originalexpiry", ["camera_id"])


def downgrade() -> None:
    op.drop_index("ix_originalexpiry_camera_id", table_name="originalexpiry")
    op.drop_table("originalexpiry")
    with op.batch_alter_table("camera", schema=None) as batch_op:
        batch_op.drop_column("retention_days")
