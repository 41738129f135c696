"""export jobs record whether the requester declined a trusted timestamp (--no-timestamp)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exportjob", schema=None) as batch_op:
        batch_op.add_column(sa.Column("no_timestamp", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("exportjob", schema=None) as batch_op:
        batch_op.drop_column("no_timestamp")
