"""redacted disclosure copies: a clip's proposed redaction and its review decisions

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.types

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_STR = sqlmodel.sql.sqltypes.AutoString
_UTC = storage.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "redaction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("status", _STR(), nullable=False),
        sa.Column("targets", _STR(), nullable=False),
        sa.Column("style", _STR(), nullable=False),
        sa.Column("mute_audio", sa.Boolean(), nullable=False),
        sa.Column("source_clip_sha256", _STR(length=64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("fps", _STR(), nullable=False),
        sa.Column("frame_count", sa.Integer(), nullable=False),
        sa.Column("detectors", sa.JSON(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("tracks", sa.JSON(), nullable=False),
        sa.Column("created_by", _STR(), nullable=False),
        sa.Column("created_at", _UTC(), nullable=False),
        sa.Column("approved_by", _STR(), nullable=True),
        sa.Column("approved_at", _UTC(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["case.id"]),
        sa.ForeignKeyConstraint(["clip_id"], ["caseclip.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("redaction", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_redaction_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_redaction_clip_id"), ["clip_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_redaction_status"), ["status"], unique=False)
    op.create_table(
        "redactiondecision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("redaction_id", sa.Integer(), nullable=False),
        sa.Column("kind", _STR(), nullable=False),
        sa.Column("track_id", _STR(), nullable=True),
        sa.Column("box", sa.JSON(), nullable=True),
        sa.Column("reason", _STR(), nullable=False),
        sa.Column("actor", _STR(), nullable=False),
        sa.Column("decided_at", _UTC(), nullable=False),
        sa.ForeignKeyConstraint(["redaction_id"], ["redaction.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("redactiondecision", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_redactiondecision_redaction_id"),
                              ["redaction_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("redactiondecision", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_redactiondecision_redaction_id"))
    op.drop_table("redactiondecision")
    with op.batch_alter_table("redaction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_redaction_status"))
        batch_op.drop_index(batch_op.f("ix_redaction_clip_id"))
        batch_op.drop_index(batch_op.f("ix_redaction_case_id"))
    op.drop_table("redaction")
