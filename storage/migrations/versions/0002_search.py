"""search tables: installed CLIP models and per-frame embeddings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "embeddingmodel",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("preset", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("architecture", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("pretrained_tag", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("weights_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("path", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("installed_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("weights_sha256"),
    )
    with op.batch_alter_table("embeddingmodel", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_embeddingmodel_preset"), ["preset"], unique=False)

    op.create_table(
        "frameembedding",
        sa.Column("frame_id", sa.Integer(), nullable=False),
        sa.Column("weights_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("preset", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.Column("linked_frame_id", sa.Integer(), nullable=True),
        sa.Column("motion_score", sa.Float(), nullable=False),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["frame_id"], ["frame.id"]),
        sa.ForeignKeyConstraint(["linked_frame_id"], ["frame.id"]),
        sa.PrimaryKeyConstraint("frame_id"),
    )
    with op.batch_alter_table("frameembedding", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_frameembedding_weights_sha256"), ["weights_sha256"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("frameembedding", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_frameembedding_weights_sha256"))
    op.drop_table("frameembedding")
    with op.batch_alter_table("embeddingmodel", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_embeddingmodel_preset"))
    op.drop_table("embeddingmodel")
