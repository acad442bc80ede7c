"""Transform-job rows in the metadata database: the validated request, state, progress and the summary.

A row is written whole at create time and then only updated (progress about twice a second while the job
runs), so a restart loses no record; the supervising process's pid and start time let the next server tell
a job whose supervisor died (marked Failed on restart) from one another live process still runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tailor.db import Base, UTCDateTime, name_type


class TransformJobRow(Base):
    __tablename__ = "transform_jobs"

    name: Mapped[str] = mapped_column(name_type(), primary_key=True)
    arn: Mapped[str] = mapped_column(String(256))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # the validated CreateTransformJob request
    status: Mapped[str] = mapped_column(String(16), index=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, default=None)
    creation_time: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_modified_time: Mapped[datetime] = mapped_column(UTCDateTime)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Progress: records (images) done, failed and in all; files (input objects) done and in all.
    records_total: Mapped[int | None] = mapped_column(Integer, default=None)
    records_done: Mapped[int] = mapped_column(Integer, default=0)
    records_failed: Mapped[int] = mapped_column(Integer, default=0)
    files_total: Mapped[int | None] = mapped_column(Integer, default=None)
    files_done: Mapped[int] = mapped_column(Integer, default=0)
    # Counts per predicted class, and accuracy + confusion matrix when the inputs sit in class folders.
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    owner_pid: Mapped[int | None] = mapped_column(Integer, default=None)
    owner_start_time: Mapped[float | None] = mapped_column(Float, default=None)
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
