"""Data capture: each endpoint config's DataCaptureConfig and the snapshot each endpoint serves with.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tailor.db import name_type

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hosting_data_capture",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("name", name_type(), primary_key=True),
        sa.Column("config", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("hosting_data_capture")
