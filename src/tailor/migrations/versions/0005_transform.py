"""Batch transform jobs, with their progress counters and summary.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tailor.db import UTCDateTime, name_type

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transform_jobs",
        sa.Column("name", name_type(), primary_key=True),
        sa.Column("arn", sa.String(256), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("creation_time", UTCDateTime(), nullable=False),
        sa.Column("last_modified_time", UTCDateTime(), nullable=False),
        sa.Column("start_time", UTCDateTime(), nullable=True),
        sa.Column("end_time", UTCDateTime(), nullable=True),
        sa.Column("records_total", sa.Integer(), nullable=True),
        sa.Column("records_done", sa.Integer(), nullable=False),
        sa.Column("records_failed", sa.Integer(), nullable=False),
        sa.Column("files_total", sa.Integer(), nullable=True),
        sa.Column("files_done", sa.Integer(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("owner_pid", sa.Integer(), nullable=True),
        sa.Column("owner_start_time", sa.Float(), nullable=True),
        sa.Column("stop_requested", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_transform_jobs_status", "transform_jobs", ["status"])
    op.create_index("ix_transform_jobs_creation_time", "transform_jobs", ["creation_time"])


def downgrade() -> None:
    op.drop_index("ix_transform_jobs_creation_time", "transform_jobs")
    op.drop_index("ix_transform_jobs_status", "transform_jobs")
    op.drop_table("transform_jobs")
