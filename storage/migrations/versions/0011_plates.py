"""plate reading: frames read, sightings, the watch list and its events

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_STR = sqlmodel.sql.sqltypes.AutoString
_TIME = storage.types.UTCDateTime


def _indexes(table: str, *columns: str, unique: tuple[str, ...] = ()) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        for column in columns:
            batch_op.create_index(batch_op.f(f"ix_{table}_{column}"), [column],
                                  unique=column in unique)


def upgrade() -> None:
    op.create_table(
        "plateframescan",
        sa.Column("frame_id", sa.Integer(), nullable=False),
        sa.Column("reader_key", _STR(length=32), nullable=False),
        sa.Column("status", _STR(), nullable=False),
        sa.Column("reads", sa.Integer(), nullable=False),
        sa.Column("scanned_at", _TIME(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["frame_id"], ["frame.id"]),
        sa.PrimaryKeyConstraint("frame_id"),
    )
    _indexes("plateframescan", "reader_key")
    op.create_table(
        "platesighting",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("camera_id", _STR(), nullable=False),
        sa.Column("plate", _STR(length=16), nullable=False),
        sa.Column("plate_format", _STR(length=16), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("votes", sa.Integer(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("first_seen_utc", _TIME(timezone=True), nullable=False),
        sa.Column("last_seen_utc", _TIME(timezone=True), nullable=False),
        sa.Column("first_frame_id", sa.Integer(), nullable=False),
        sa.Column("last_frame_id", sa.Integer(), nullable=False),
        sa.Column("best_frame_id", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("offset_in_segment_s", sa.Float(), nullable=False),
        sa.Column("day_phase", _STR(length=8), nullable=False),
        sa.Column("reads", sa.JSON(), nullable=False),
        sa.Column("alternatives", sa.JSON(), nullable=False),
        sa.Column("best_confidence", sa.Float(), nullable=False),
        sa.Column("crop_sha256", _STR(length=64), nullable=False),
        sa.Column("crop_provenance", sa.JSON(), nullable=False),
        sa.Column("reader_key", _STR(length=32), nullable=False),
        sa.Column("created_at", _TIME(timezone=True), nullable=False),
        sa.Column("updated_at", _TIME(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["camera_id"], ["camera.id"]),
        sa.ForeignKeyConstraint(["first_frame_id"], ["frame.id"]),
        sa.ForeignKeyConstraint(["last_frame_id"], ["frame.id"]),
        sa.ForeignKeyConstraint(["best_frame_id"], ["frame.id"]),
        sa.ForeignKeyConstraint(["segment_id"], ["segment.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    _indexes("platesighting", "camera_id", "plate", "first_seen_utc", "last_seen_utc",
             "best_frame_id", "day_phase")
    op.create_table(
        "watchlistentry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plate", _STR(length=16), nullable=False),
        sa.Column("reason", _STR(length=500), nullable=False),
        sa.Column("expires_at", _TIME(timezone=True), nullable=False),
        sa.Column("added_by", _STR(length=64), nullable=False),
        sa.Column("created_at", _TIME(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    _indexes("watchlistentry", "plate", unique=("plate",))
    op.create_table(
        "plateevent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("watch_id", sa.Integer(), nullable=False),
        sa.Column("sighting_id", sa.Integer(), nullable=False),
        sa.Column("plate", _STR(length=16), nullable=False),
        sa.Column("camera_id", _STR(), nullable=False),
        sa.Column("seen_at_utc", _TIME(timezone=True), nullable=False),
        sa.Column("reason", _STR(length=500), nullable=False),
        sa.Column("raised_at", _TIME(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["watch_id"], ["watchlistentry.id"]),
        sa.ForeignKeyConstraint(["sighting_id"], ["platesighting.id"]),
        sa.ForeignKeyConstraint(["camera_id"], ["camera.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("watch_id", "sighting_id"),
    )
    _indexes("plateevent", "watch_id", "sighting_id", "plate", "camera_id")


def downgrade() -> None:
    for table in ("plateevent", "watchlistentry", "platesighting", "plateframescan"):
        op.drop_table(table)
