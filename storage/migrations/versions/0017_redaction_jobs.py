"""redaction proposals and disclosure exports run as worker jobs

A redaction row carries its detection job's state (queued, running, failed; then
proposed) with the process running it, its progress and a failure's sentence; an export
job may be a disclosure (redacted) export, naming what it masks.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.types

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("redaction", schema=None) as batch_op:
        batch_op.add_column(sa.Column("worker", sqlmodel.sql.sqltypes.AutoString(),
                                      nullable=True))
        batch_op.add_column(sa.Column("progress_frames", sa.Integer(), nullable=False,
                                      server_default="0"))
        batch_op.add_column(sa.Column("message", sqlmodel.sql.sqltypes.AutoString(),
                                      nullable=False, server_default=""))
        batch_op.add_column(sa.Column("updated_at", storage.types.UTCDateTime(timezone=True),
                                      nullable=True))
    with op.batch_alter_table("exportjob", schema=None) as batch_op:
        batch_op.add_column(sa.Column("redact", sqlmodel.sql.sqltypes.AutoString(length=40),
                                      nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("exportjob", schema=None) as batch_op:
        batch_op.drop_column("redact")
    with op.batch_alter_table("redaction", schema=None) as batch_op:
        batch_op.drop_column("updated_at")
        batch_op.drop_column("message")
        batch_op.drop_column("progress_frames")
        batch_op.drop_column("worker")
