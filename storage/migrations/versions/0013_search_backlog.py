"""search backlog (frames not yet in a committed shard) and the shards the database knows

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.types

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_STR = sqlmodel.sql.sqltypes.AutoString
_UTC = storage.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "searchbacklog",
        sa.Column("frame_id", sa.Integer(), nullable=False),
        sa.Column("camera_id", _STR(), nullable=False),
        sa.Column("captured_at_utc", _UTC(timezone=True), nullable=False),
        sa.Column("embedded", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["camera_id"], ["camera.id"]),
        sa.ForeignKeyConstraint(["frame_id"], ["frame.id"]),
        sa.PrimaryKeyConstraint("frame_id"),
    )
    op.create_index("ix_searchbacklog_scope", "searchbacklog",
                    ["embedded", "camera_id", "captured_at_utc"], unique=False)
    op.create_table(
        "searchshard",
        sa.Column("shard_key", _STR(), nullable=False),
        sa.Column("camera_id", _STR(), nullable=False),
        sa.Column("local_day", sa.Date(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("weights_sha256", _STR(length=64), nullable=False),
        sa.Column("committed_at", _UTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["camera_id"], ["camera.id"]),
        sa.PrimaryKeyConstraint("shard_key"),
    )
    op.create_index("ix_searchshard_camera_day", "searchshard", ["camera_id", "local_day"],
                    unique=False)
    bind = op.get_bind()
    # every frame not yet in a committed shard of its own model joins the backlog
    bind.execute(sa.text(
        "INSERT INTO searchbacklog (frame_id, camera_id, captured_at_utc, embedded) "
        "SELECT f.id, f.camera_id, f.captured_at_utc, e.frame_id IS NOT NULL FROM frame f "
        "LEFT JOIN frameembedding e ON e.frame_id = f.id "
        "LEFT JOIN frameindexentry i ON i.frame_id = f.id "
        "WHERE e.frame_id IS NULL OR i.frame_id IS NULL OR i.shard_key IS NULL "
        "OR i.weights_sha256 IS NULL OR i.weights_sha256 <> e.weights_sha256"))
    rows = bind.execute(sa.text(
        "SELECT shard_key, count(*), min(weights_sha256) FROM frameindexentry "
        "WHERE shard_key IS NOT NULL AND weights_sha256 IS NOT NULL GROUP BY shard_key")).all()
    shards = sa.table("searchshard", sa.column("shard_key", _STR()),
                      sa.column("camera_id", _STR()), sa.column("local_day", sa.Date()),
                      sa.column("frames", sa.Integer()),
                      sa.column("weights_sha256", _STR()),
                      sa.column("committed_at", _UTC(timezone=True)))
    now = datetime.now(UTC)
    values = []
    for key, count, weights in rows:
        camera_id, _, day = str(key).rpartition("/")
        values.append({"shard_key": key, "camera_id": camera_id,
                       "local_day": date.fromisoformat(day), "frames": int(count),
                       "weights_sha256": weights, "committed_at": now})
    if values:
        op.bulk_insert(shards, values)


def downgrade() -> None:
    op.drop_index("ix_searchshard_camera_day", table_name="searchshard")
    op.drop_table("searchshard")
    op.drop_index("ix_searchbacklog_scope", table_name="searchbacklog")
    op.drop_table("searchbacklog")
