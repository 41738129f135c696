"""continuous recording: camera stream URLs, gaps, recorder and watch state, sampling path

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TEXT = sqlmodel.sql.sqltypes.AutoString
_TIME = storage.types.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("camera", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stream_url", _TEXT(), nullable=True))
    with op.batch_alter_table("original", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sampling", _TEXT(), server_default="", nullable=False))
    op.create_table(
        "cameragap",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("camera_id", _TEXT(), nullable=False),
        sa.Column("start_utc", _TIME(timezone=True), nullable=False),
        sa.Column("end_utc", _TIME(timezone=True), nullable=True),
        sa.Column("reason", _TEXT(), nullable=False),
        sa.Column("created_at", _TIME(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["camera_id"], ["camera.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("cameragap", schema=None) as batch_op:
        for column in ("camera_id", "start_utc", "end_utc"):
            batch_op.create_index(batch_op.f(f"ix_cameragap_{column}"), [column], unique=False)
    op.create_table(
        "recorderstate",
        sa.Column("camera_id", _TEXT(), nullable=False),
        sa.Column("state", _TEXT(), nullable=False),
        sa.Column("message", _TEXT(), nullable=False),
        sa.Column("worker", _TEXT(), nullable=False),
        sa.Column("updated_at", _TIME(timezone=True), nullable=False),
        sa.Column("connected_at", _TIME(timezone=True), nullable=True),
        sa.Column("last_file_end_utc", _TIME(timezone=True), nullable=True),
        sa.Column("last_ingested_at", _TIME(timezone=True), nullable=True),
        sa.Column("ingest_lag_s", sa.Float(), nullable=True),
        sa.Column("bitrate_bps", sa.Float(), nullable=True),
        sa.Column("fps", sa.Float(), nullable=True),
        sa.Column("files_recorded", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["camera_id"], ["camera.id"]),
        sa.PrimaryKeyConstraint("camera_id"),
    )
    op.create_table(
        "watchedfile",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("folder", _TEXT(), nullable=False),
        sa.Column("name", _TEXT(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("camera_id", _TEXT(), nullable=False),
        sa.Column("status", _TEXT(), nullable=False),
        sa.Column("sha256", _TEXT(length=64), nullable=True),
        sa.Column("original_id", sa.Integer(), nullable=True),
        sa.Column("message", _TEXT(), nullable=False),
        sa.Column("seen_at", _TIME(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["camera_id"], ["camera.id"]),
        sa.ForeignKeyConstraint(["original_id"], ["original.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("folder", "name", "size_bytes", "mtime_ns"),
    )
    with op.batch_alter_table("watchedfile", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_watchedfile_folder"), ["folder"], unique=False)
        batch_op.create_index(batch_op.f("ix_watchedfile_camera_id"), ["camera_id"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("watchedfile", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_watchedfile_camera_id"))
        batch_op.drop_index(batch_op.f("ix_watchedfile_folder"))
    op.drop_table("watchedfile")
    op.drop_table("recorderstate")
    with op.batch_alter_table("cameragap", schema=None) as batch_op:
        for column in ("end_utc", "start_utc", "camera_id"):
            batch_op.drop_index(batch_op.f(f"ix_cameragap_{column}"))
    op.drop_table("cameragap")
    with op.batch_alter_table("original", schema=None) as batch_op:
        batch_op.drop_column("sampling")
    with op.batch_alter_table("camera", schema=None) as batch_op:
        batch_op.drop_column("stream_url")
