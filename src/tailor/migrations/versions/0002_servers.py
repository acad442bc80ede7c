"""Several servers on one database: the ``servers`` table and who owns each training job and endpoint.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tailor.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "servers",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(255), nullable=True),
        sa.Column("home", sa.String(1024), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("lease_seconds", sa.Float(), nullable=False),
    )
    op.create_index("ix_servers_heartbeat_at", "servers", ["heartbeat_at"])
    # Plain ADD COLUMN (nullable, no default): SQLite and PostgreSQL both do it without copying the table.
    op.add_column("training_jobs", sa.Column("owner_server", sa.String(32), nullable=True))
    op.create_index("ix_training_jobs_owner_server", "training_jobs", ["owner_server"])
    op.add_column("hosting_endpoints", sa.Column("owner_server", sa.String(32), nullable=True))
    op.add_column("hosting_endpoints", sa.Column("pending_op", sa.String(16), nullable=True))
    op.create_index("ix_hosting_endpoints_owner_server", "hosting_endpoints", ["owner_server"])


def downgrade() -> None:
    op.drop_index("ix_hosting_endpoints_owner_server", "hosting_endpoints")
    op.drop_column("hosting_endpoints", "pending_op")
    op.drop_column("hosting_endpoints", "owner_server")
    op.drop_index("ix_training_jobs_owner_server", "training_jobs")
    op.drop_column("training_jobs", "owner_server")
    op.drop_index("ix_servers_heartbeat_at", "servers")
    op.drop_table("servers")
