"""search index tables (shards, per-frame day phase)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "frameindexentry",
        sa.Column("frame_id", sa.Integer(), nullable=False),
        sa.Column("day_phase", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("sun_elevation_deg", sa.Float(), nullable=False),
        sa.Column("monochrome", sa.Boolean(), nullable=False),
        sa.Column("shard_key", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("weights_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("vector_frame_id", sa.Integer(), nullable=True),
        sa.Column("computed_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("indexed_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["frame_id"], ["frame.id"]),
        sa.PrimaryKeyConstraint("frame_id"),
    )
    with op.batch_alter_table("frameindexentry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_frameindexentry_day_phase"), ["day_phase"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_frameindexentry_shard_key"), ["shard_key"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_frameindexentry_vector_frame_id"),
                              ["vector_frame_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("frameindexentry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_frameindexentry_vector_frame_id"))
        batch_op.drop_index(batch_op.f("ix_frameindexentry_shard_key"))
        batch_op.drop_index(batch_op.f("ix_frameindexentry_day_phase"))
    op.drop_table("frameindexentry")
