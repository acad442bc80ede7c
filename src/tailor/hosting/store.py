"""Hosting rows in the metadata database: models, endpoint configs, endpoints, their workers and metrics.

Every piece of hosting state lives here, so any Tailor process can route to an endpoint's workers (their Unix
sockets are in ``hosting_workers``) and a restarted server relaunches the workers of InService endpoints.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tailor.db import Base, UTCDateTime, name_type


class ModelRow(Base):
    __tablename__ = "hosting_models"

    name: Mapped[str] = mapped_column(name_type(), primary_key=True)
    arn: Mapped[str] = mapped_column(String(256))
    model_id: Mapped[str] = mapped_column(String(32))  # server-made directory name under settings.models_dir
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # the validated CreateModel request
    model_json: Mapped[dict[str, Any]] = mapped_column(JSON)  # image_shape, num_classes, class_names, ...
    creation_time: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class EndpointConfigRow(Base):
    __tablename__ = "hosting_endpoint_configs"

    name: Mapped[str] = mapped_column(name_type(), primary_key=True)
    arn: Mapped[str] = mapped_column(String(256))
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    creation_time: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class EndpointRow(Base):
    __tablename__ = "hosting_endpoints"

    name: Mapped[str] = mapped_column(name_type(), primary_key=True)
    arn: Mapped[str] = mapped_column(String(256))
    config_name: Mapped[str] = mapped_column(String(63))  # the config that serves traffic
    # Snapshot of the serving config's variants (a config may be deleted while an endpoint uses it).
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    pending_config_name: Mapped[str | None] = mapped_column(String(63), default=None)  # during Updating
    status: Mapped[str] = mapped_column(String(32), index=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, default=None)
    generation: Mapped[int] = mapped_column(Integer, default=0)  # bumped on every routing change
    # Several servers on one PostgreSQL: the server supervising the instances, and an "update" or "delete"
    # asked of another server, which the owner carries out (None on SQLite: one server does everything).
    owner_server: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    pending_op: Mapped[str | None] = mapped_column(String(16), default=None)
    creation_time: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_modified_time: Mapped[datetime] = mapped_column(UTCDateTime)


class WorkerRow(Base):
    """One model-server process (a SageMaker "instance")."""

    __tablename__ = "hosting_workers"
    __table_args__ = (Index("ix_hosting_workers_endpoint", "endpoint_name", "generation"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    endpoint_name: Mapped[str] = mapped_column(String(63))
    generation: Mapped[int] = mapped_column(Integer)  # the endpoint generation this worker serves
    variant_name: Mapped[str] = mapped_column(String(63))
    model_name: Mapped[str] = mapped_column(String(63))
    model_dir: Mapped[str] = mapped_column(String(1024))
    socket_path: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))  # starting | ready | draining | failed
    pid: Mapped[int | None] = mapped_column(Integer, default=None)
    process_start_time: Mapped[float | None] = mapped_column(Float, default=None)
    owner_pid: Mapped[int | None] = mapped_column(Integer, default=None)
    restarts: Mapped[int] = mapped_column(Integer, default=0)


class EndpointMetricRow(Base):
    """Per endpoint, variant and minute: SageMaker's CloudWatch-style invocation metrics (sums and counts)."""

    __tablename__ = "hosting_endpoint_metrics"

    endpoint_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    variant_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    minute: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    invocations: Mapped[int] = mapped_column(Integer, default=0)
    errors_4xx: Mapped[int] = mapped_column(Integer, default=0)
    errors_5xx: Mapped[int] = mapped_column(Integer, default=0)
    model_latency_us: Mapped[float] = mapped_column(Float, default=0.0)  # sum over invocations
    overhead_latency_us: Mapped[float] = mapped_column(Float, default=0.0)  # sum over invocations
    max_model_latency_us: Mapped[float] = mapped_column(Float, default=0.0)
    instances: Mapped[int] = mapped_column(Integer, default=0)  # ready workers when last flushed
    cpu_percent: Mapped[float] = mapped_column(Float, default=0.0)  # sum over samples, per worker average below
    memory_bytes: Mapped[float] = mapped_column(Float, default=0.0)  # sum over samples
    samples: Mapped[int] = mapped_column(Integer, default=0)


class EndpointMetricDetailRow(Base):
    """Per endpoint, variant and minute: the ModelLatency histogram (for P50/P99) and realised batch sizes.

    A table of its own (not new columns on ``hosting_endpoint_metrics``) so databases made before it existed
    gain it through ``create_all`` without a migration.
    """

    __tablename__ = "hosting_endpoint_metric_details"

    endpoint_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    variant_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    minute: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    # {"bin": count}; bin b holds ModelLatency in [1.05**b, 1.05**(b+1)) µs (tailor.serving.metrics)
    latency_histogram: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    batches: Mapped[int] = mapped_column(Integer, default=0)
    batched_images: Mapped[int] = mapped_column(Integer, default=0)


class EndpointInputMismatchRow(Base):
    """Per endpoint, variant and minute: decoded inputs whose size or colour mode differed from the model's.

    Its own table (like the details above) so existing databases gain it through ``create_all``.
    """

    __tablename__ = "hosting_endpoint_input_mismatches"

    endpoint_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    variant_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    minute: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    mismatched_inputs: Mapped[int] = mapped_column(Integer, default=0)


class DataCaptureRow(Base):
    """The DataCaptureConfig of an endpoint config (kind "endpoint-config") or the snapshot an endpoint serves
    with (kind "endpoint"), as validated by ``tailor.hosting.capture.parse_config``.

    A table of its own (not a column of the config and endpoint tables): migration 0003 adds it.
    """

    __tablename__ = "hosting_data_capture"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(name_type(), primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
