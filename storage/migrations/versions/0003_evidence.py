"""evidence tables: cases, clips, shares, custody chain, export jobs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_STR = sqlmodel.sql.sqltypes.AutoString
_UTC = storage.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "custodychainhead",
        sa.Column("chain", _STR(length=64), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("last_hash", _STR(length=64), nullable=False),
        sa.PrimaryKeyConstraint("chain"),
    )
    op.create_table(
        "case",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", _STR(length=64), nullable=False),
        sa.Column("title", _STR(), nullable=False),
        sa.Column("legal_basis", _STR(), nullable=False),
        sa.Column("investigator_id", sa.Integer(), nullable=False),
        sa.Column("agency", _STR(), nullable=False),
        sa.Column("status", _STR(), nullable=False),
        sa.Column("created_at", _UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("case", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_agency"), ["agency"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_investigator_id"), ["investigator_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_number"), ["number"], unique=True)

    op.create_table(
        "caseclip",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("camera_id", _STR(), nullable=False),
        sa.Column("original_id", sa.Integer(), nullable=False),
        sa.Column("start_utc", _UTC(timezone=True), nullable=False),
        sa.Column("end_utc", _UTC(timezone=True), nullable=False),
        sa.Column("note", _STR(), nullable=False),
        sa.Column("source", _STR(), nullable=False),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("added_by_id", sa.Integer(), nullable=True),
        sa.Column("added_at", _UTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["camera_id"], ["camera.id"]),
        sa.ForeignKeyConstraint(["case_id"], ["case.id"]),
        sa.ForeignKeyConstraint(["original_id"], ["original.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("caseclip", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_caseclip_camera_id"), ["camera_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_caseclip_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_caseclip_original_id"), ["original_id"], unique=False)

    op.create_table(
        "caseshare",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("shared_at", _UTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["case.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "user_id"),
    )
    with op.batch_alter_table("caseshare", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_caseshare_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_caseshare_user_id"), ["user_id"], unique=False)

    op.create_table(
        "custodyentry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain", _STR(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("prev_hash", _STR(length=64), nullable=False),
        sa.Column("entry_hash", _STR(length=64), nullable=False),
        sa.Column("action", _STR(), nullable=False),
        sa.Column("actor", _STR(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("original_id", sa.Integer(), nullable=True),
        sa.Column("recorded_at", _UTC(timezone=True), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["case.id"]),
        sa.ForeignKeyConstraint(["original_id"], ["original.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chain", "seq"),
        sa.UniqueConstraint("entry_hash"),
    )
    with op.batch_alter_table("custodyentry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_custodyentry_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_custodyentry_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_custodyentry_chain"), ["chain"], unique=False)
        batch_op.create_index(batch_op.f("ix_custodyentry_original_id"), ["original_id"], unique=False)

    op.create_table(
        "exportjob",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("status", _STR(), nullable=False),
        sa.Column("stage", _STR(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("message", _STR(), nullable=False),
        sa.Column("bundle_path", _STR(), nullable=True),
        sa.Column("bundle_sha256", _STR(length=64), nullable=True),
        sa.Column("tag_manifest_sha256", _STR(length=64), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("created_at", _UTC(timezone=True), nullable=False),
        sa.Column("updated_at", _UTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["case.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("exportjob", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exportjob_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_exportjob_status"), ["status"], unique=False)


def downgrade() -> None:
    for table, indexes in (
        ("exportjob", ("case_id", "status")),
        ("custodyentry", ("action", "case_id", "chain", "original_id")),
        ("caseshare", ("case_id", "user_id")),
        ("caseclip", ("camera_id", "case_id", "original_id")),
        ("case", ("agency", "investigator_id", "number")),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in indexes:
                batch_op.drop_index(batch_op.f(f"ix_{table}_{column}"))
        op.drop_table(table)
    op.drop_table("custodychainhead")
