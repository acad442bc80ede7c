"""Hyperparameter tuning jobs and their trials (each trial is a training job).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tailor.db import UTCDateTime, name_type

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tuning_jobs",
        sa.Column("name", name_type(32), primary_key=True),
        sa.Column("arn", sa.String(256), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("creation_time", UTCDateTime(), nullable=False),
        sa.Column("last_modified_time", UTCDateTime(), nullable=False),
        sa.Column("end_time", UTCDateTime(), nullable=True),
        sa.Column("best_training_job", sa.String(63), nullable=True),
        sa.Column("owner_pid", sa.Integer(), nullable=True),
        sa.Column("owner_start_time", sa.Float(), nullable=True),
        sa.Column("stop_requested", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_tuning_jobs_creation_time", "tuning_jobs", ["creation_time"])
    op.create_index("ix_tuning_jobs_status", "tuning_jobs", ["status"])
    op.create_table(
        "tuning_trials",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "tuning_job_name",
            name_type(32),
            sa.ForeignKey("tuning_jobs.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("training_job_name", name_type(), nullable=False, unique=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("objective", sa.Float(), nullable=True),
        sa.Column("intermediate", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("creation_time", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("tuning_job_name", "number", name="uq_tuning_trials_number"),
    )
    op.create_index("ix_tuning_trials_tuning_job_name", "tuning_trials", ["tuning_job_name"])


def downgrade() -> None:
    op.drop_index("ix_tuning_trials_tuning_job_name", "tuning_trials")
    op.drop_table("tuning_trials")
    op.drop_index("ix_tuning_jobs_status", "tuning_jobs")
    op.drop_index("ix_tuning_jobs_creation_time", "tuning_jobs")
    op.drop_table("tuning_jobs")
