"""Baseline: the tables Tailor created with ``create_all`` before migrations existed.

Creates each table only when it is missing: a database made by an older Tailor may lack the tables added
later without a migration (hosting_endpoint_metric_details, hosting_endpoint_input_mismatches), exactly as
``create_all`` used to fill them in.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tailor.db import BigId, UTCDateTime, name_type

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _tables() -> dict[str, tuple[list[sa.SchemaItem], list[tuple[str, list[str], bool]]]]:
    """Each table's columns and constraints, and its indexes (name, columns, unique)."""
    return {
        "training_jobs": (
            [
                sa.Column("name", name_type(), primary_key=True),
                sa.Column("arn", sa.String(256), nullable=False),
                sa.Column("spec", sa.JSON(), nullable=False),
                sa.Column("status", sa.String(16), nullable=False),
                sa.Column("secondary_status", sa.String(32), nullable=False),
                sa.Column("transitions", sa.JSON(), nullable=False),
                sa.Column("failure_reason", sa.Text(), nullable=True),
                sa.Column("final_metrics", sa.JSON(), nullable=False),
                sa.Column("model_artifact", sa.String(1024), nullable=True),
                sa.Column("creation_time", UTCDateTime(), nullable=False),
                sa.Column("last_modified_time", UTCDateTime(), nullable=False),
                sa.Column("training_start_time", UTCDateTime(), nullable=True),
                sa.Column("training_end_time", UTCDateTime(), nullable=True),
                sa.Column("job_dir", sa.String(1024), nullable=False),
                sa.Column("owner_pid", sa.Integer(), nullable=True),
                sa.Column("owner_start_time", sa.Float(), nullable=True),
                sa.Column("pid", sa.Integer(), nullable=True),
                sa.Column("pgid", sa.Integer(), nullable=True),
                sa.Column("process_start_time", sa.Float(), nullable=True),
                sa.Column("exit_code", sa.Integer(), nullable=True),
                sa.Column("stop_requested", sa.Boolean(), nullable=False),
                sa.Column("stop_reason", sa.String(32), nullable=True),
            ],
            [
                ("ix_training_jobs_status", ["status"], False),
                ("ix_training_jobs_creation_time", ["creation_time"], False),
            ],
        ),
        "training_job_metrics": (
            [
                sa.Column("id", BigId, primary_key=True, autoincrement=True),
                sa.Column(
                    "job_name", name_type(), sa.ForeignKey("training_jobs.name", ondelete="CASCADE"), nullable=False
                ),
                sa.Column("timestamp", UTCDateTime(), nullable=False),
                sa.Column("name", sa.String(255), nullable=False),
                sa.Column("value", sa.Float(), nullable=False),
                sa.Column("epoch", sa.Integer(), nullable=True),
            ],
            [("ix_training_job_metrics_job_ts", ["job_name", "timestamp"], False)],
        ),
        "training_job_resources": (
            [
                sa.Column("id", BigId, primary_key=True, autoincrement=True),
                sa.Column(
                    "job_name", name_type(), sa.ForeignKey("training_jobs.name", ondelete="CASCADE"), nullable=False
                ),
                sa.Column("timestamp", UTCDateTime(), nullable=False),
                sa.Column("cpu_percent", sa.Float(), nullable=False),
                sa.Column("rss_bytes", sa.BigInteger(), nullable=False),
                sa.Column("gpu_utilization", sa.Float(), nullable=True),
                sa.Column("gpu_memory_bytes", sa.BigInteger(), nullable=True),
            ],
            [("ix_training_job_resources_job_ts", ["job_name", "timestamp"], False)],
        ),
        "hosting_models": (
            [
                sa.Column("name", name_type(), primary_key=True),
                sa.Column("arn", sa.String(256), nullable=False),
                sa.Column("model_id", sa.String(32), nullable=False),
                sa.Column("spec", sa.JSON(), nullable=False),
                sa.Column("model_json", sa.JSON(), nullable=False),
                sa.Column("creation_time", UTCDateTime(), nullable=False),
            ],
            [("ix_hosting_models_creation_time", ["creation_time"], False)],
        ),
        "hosting_endpoint_configs": (
            [
                sa.Column("name", name_type(), primary_key=True),
                sa.Column("arn", sa.String(256), nullable=False),
                sa.Column("variants", sa.JSON(), nullable=False),
                sa.Column("creation_time", UTCDateTime(), nullable=False),
            ],
            [("ix_hosting_endpoint_configs_creation_time", ["creation_time"], False)],
        ),
        "hosting_endpoints": (
            [
                sa.Column("name", name_type(), primary_key=True),
                sa.Column("arn", sa.String(256), nullable=False),
                sa.Column("config_name", sa.String(63), nullable=False),
                sa.Column("variants", sa.JSON(), nullable=False),
                sa.Column("pending_config_name", sa.String(63), nullable=True),
                sa.Column("status", sa.String(32), nullable=False),
                sa.Column("failure_reason", sa.Text(), nullable=True),
                sa.Column("generation", sa.Integer(), nullable=False),
                sa.Column("creation_time", UTCDateTime(), nullable=False),
                sa.Column("last_modified_time", UTCDateTime(), nullable=False),
            ],
            [
                ("ix_hosting_endpoints_status", ["status"], False),
                ("ix_hosting_endpoints_creation_time", ["creation_time"], False),
            ],
        ),
        "hosting_workers": (
            [
                sa.Column("id", sa.String(32), primary_key=True),
                sa.Column("endpoint_name", sa.String(63), nullable=False),
                sa.Column("generation", sa.Integer(), nullable=False),
                sa.Column("variant_name", sa.String(63), nullable=False),
                sa.Column("model_name", sa.String(63), nullable=False),
                sa.Column("model_dir", sa.String(1024), nullable=False),
                sa.Column("socket_path", sa.String(200), nullable=False),
                sa.Column("state", sa.String(16), nullable=False),
                sa.Column("pid", sa.Integer(), nullable=True),
                sa.Column("process_start_time", sa.Float(), nullable=True),
                sa.Column("owner_pid", sa.Integer(), nullable=True),
                sa.Column("restarts", sa.Integer(), nullable=False),
            ],
            [("ix_hosting_workers_endpoint", ["endpoint_name", "generation"], False)],
        ),
        "hosting_endpoint_metrics": (
            [
                sa.Column("endpoint_name", sa.String(63), primary_key=True),
                sa.Column("variant_name", sa.String(63), primary_key=True),
                sa.Column("minute", UTCDateTime(), primary_key=True),
                *(sa.Column(c, sa.Integer(), nullable=False) for c in ("invocations", "errors_4xx", "errors_5xx")),
                *(
                    sa.Column(c, sa.Float(), nullable=False)
                    for c in ("model_latency_us", "overhead_latency_us", "max_model_latency_us")
                ),
                sa.Column("instances", sa.Integer(), nullable=False),
                sa.Column("cpu_percent", sa.Float(), nullable=False),
                sa.Column("memory_bytes", sa.Float(), nullable=False),
                sa.Column("samples", sa.Integer(), nullable=False),
            ],
            [],
        ),
        "hosting_endpoint_metric_details": (
            [
                sa.Column("endpoint_name", sa.String(63), primary_key=True),
                sa.Column("variant_name", sa.String(63), primary_key=True),
                sa.Column("minute", UTCDateTime(), primary_key=True),
                sa.Column("latency_histogram", sa.JSON(), nullable=False),
                sa.Column("batches", sa.Integer(), nullable=False),
                sa.Column("batched_images", sa.Integer(), nullable=False),
            ],
            [],
        ),
        "hosting_endpoint_input_mismatches": (
            [
                sa.Column("endpoint_name", sa.String(63), primary_key=True),
                sa.Column("variant_name", sa.String(63), primary_key=True),
                sa.Column("minute", UTCDateTime(), primary_key=True),
                sa.Column("mismatched_inputs", sa.Integer(), nullable=False),
            ],
            [],
        ),
        "auth_access_keys": (
            [
                sa.Column("access_key_id", sa.String(32), primary_key=True),
                sa.Column("name", name_type(64), nullable=False),
                sa.Column("secret_nonce", sa.LargeBinary(12), nullable=False),
                sa.Column("secret_ciphertext", sa.LargeBinary(128), nullable=False),
                sa.Column("policy", sa.Text(), nullable=False),
                sa.Column("enabled", sa.Boolean(), nullable=False),
                sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            ],
            [("ix_auth_access_keys_name", ["name"], True)],
        ),
        "auth_tokens": (
            [
                sa.Column("token_sha256", sa.String(64), primary_key=True),
                sa.Column(
                    "access_key_id",
                    sa.String(32),
                    sa.ForeignKey("auth_access_keys.access_key_id", ondelete="CASCADE"),
                    nullable=False,
                ),
                sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
                sa.Column("revoked", sa.Boolean(), nullable=False),
            ],
            [("ix_auth_tokens_access_key_id", ["access_key_id"], False)],
        ),
    }


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, (columns, indexes) in _tables().items():  # in dependency order (keys before tokens)
        if name in existing:
            continue
        op.create_table(name, *columns)
        for index, cols, unique in indexes:
            op.create_index(index, name, cols, unique=unique)


def downgrade() -> None:
    for name in reversed(list(_tables())):
        op.drop_table(name)
