"""a recorder state's message is kept as a code and its values beside the English sentence

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recorderstate", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message_code", sqlmodel.sql.sqltypes.AutoString(),
                                      nullable=False, server_default=""))
        batch_op.add_column(sa.Column("message_args", sa.JSON(), nullable=False,
                                      server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("recorderstate", schema=None) as batch_op:
        batch_op.drop_column("message_args")
        batch_op.drop_column("message_code")
