"""sign-in hardening: refused tries counted once a window, tokens cut off by a reset

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tokens_valid_after",
                                      storage.types.UTCDateTime(timezone=True), nullable=True))

    op.create_table(
        "loginrefusal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
        sa.Column("first_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("loginrefusal", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_loginrefusal_first_at"), ["first_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_loginrefusal_subject"), ["subject"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("loginrefusal", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loginrefusal_subject"))
        batch_op.drop_index(batch_op.f("ix_loginrefusal_first_at"))
    op.drop_table("loginrefusal")
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("tokens_valid_after")
