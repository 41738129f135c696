"""a folder's ingest job queues one job per file, each naming it as parent

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ingestjob", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_ingestjob_parent_id"), ["parent_id"], unique=False)
        batch_op.create_foreign_key("fk_ingestjob_parent_id_ingestjob", "ingestjob",
                                    ["parent_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("ingestjob", schema=None) as batch_op:
        batch_op.drop_constraint("fk_ingestjob_parent_id_ingestjob", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_ingestjob_parent_id"))
        batch_op.drop_column("parent_id")
