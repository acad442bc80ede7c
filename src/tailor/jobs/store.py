"""Training-job rows in the metadata database: the job itself, its metric time series, its resource samples.

A job row is written once, whole, at create time and then only updated; nothing else keeps job state, so a
restart loses no record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from tailor.db import Base, BigId, UTCDateTime, name_type, utcnow

__all__ = ["MetricPointRow", "ResourceSampleRow", "TrainingJobRow", "UTCDateTime", "utcnow"]


class TrainingJobRow(Base):
    __tablename__ = "training_jobs"

    name: Mapped[str] = mapped_column(name_type(), primary_key=True)
    arn: Mapped[str] = mapped_column(String(256))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # the validated CreateTrainingJob request
    status: Mapped[str] = mapped_column(String(16), index=True)
    secondary_status: Mapped[str] = mapped_column(String(32))
    transitions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    failure_reason: Mapped[str | None] = mapped_column(Text, default=None)
    final_metrics: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    model_artifact: Mapped[str | None] = mapped_column(String(1024), default=None)
    creation_time: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_modified_time: Mapped[datetime] = mapped_column(UTCDateTime)
    training_start_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    training_end_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    job_dir: Mapped[str] = mapped_column(String(1024))
    # The Tailor process that supervises the job, and the training process group it launched. Start times
    # (psutil create_time) tell a live process from a recycled PID after a restart.
    owner_pid: Mapped[int | None] = mapped_column(Integer, default=None)
    owner_start_time: Mapped[float | None] = mapped_column(Float, default=None)
    pid: Mapped[int | None] = mapped_column(Integer, default=None)
    pgid: Mapped[int | None] = mapped_column(Integer, default=None)
    process_start_time: Mapped[float | None] = mapped_column(Float, default=None)
    exit_code: Mapped[int | None] = mapped_column(Integer, default=None)
    # The server (``servers.id``) supervising the job when several share a PostgreSQL database; None on SQLite.
    owner_server: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    # Set by StopTrainingJob from any process; the supervisor polls it. "user" or "max_runtime".
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    stop_reason: Mapped[str | None] = mapped_column(String(32), default=None)


class _JobSeries:
    """A time series of one job: rows by id, read by (job, time); they go when the job's row goes."""

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_name: Mapped[str] = mapped_column(name_type(), ForeignKey("training_jobs.name", ondelete="CASCADE"))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Index]:
        return (Index(f"ix_{cls.__tablename__}_job_ts", "job_name", "timestamp"),)


class MetricPointRow(_JobSeries, Base):
    __tablename__ = "training_job_metrics"

    name: Mapped[str] = mapped_column(String(255))
    value: Mapped[float] = mapped_column(Float)
    epoch: Mapped[int | None] = mapped_column(Integer, default=None)


class ResourceSampleRow(_JobSeries, Base):
    __tablename__ = "training_job_resources"

    cpu_percent: Mapped[float] = mapped_column(Float)
    rss_bytes: Mapped[int] = mapped_column(BigInteger)  # bytes: past 2 GiB, beyond PostgreSQL's INTEGER
    gpu_utilization: Mapped[float | None] = mapped_column(Float, default=None)
    gpu_memory_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
