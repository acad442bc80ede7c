"""Tuning-job rows: the job itself and its trials, each trial one training job.

Everything the orchestrator knows lives here (the study is rebuilt from these rows after a restart): a trial
row is written before its training job is created, and updated as its metric reaches each epoch and when its
training job ends. Portable types only (String, Integer, Float, JSON, timestamps), so PostgreSQL works as SQLite.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tailor.db import Base, UTCDateTime, name_type

# Trial states (the orchestrator's, beside the training job's own status):
#   running      its training job was created and has not ended
#   complete     Completed with an objective value
#   pruned       stopped early by the pruner (Hyperband), its last intermediate value kept
#   failed       Failed, or Completed without the objective metric
#   stopped      stopped by the user (StopHyperParameterTuningJob or StopTrainingJob)
#   interrupted  ended by a server restart or shutdown: RetryableError, another trial takes its place
TRIAL_STATES = ("running", "complete", "pruned", "failed", "stopped", "interrupted")


class TuningJobRow(Base):
    __tablename__ = "tuning_jobs"

    name: Mapped[str] = mapped_column(name_type(32), primary_key=True)
    arn: Mapped[str] = mapped_column(String(256))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # the validated CreateHyperParameterTuningJob request
    status: Mapped[str] = mapped_column(String(16), index=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, default=None)
    creation_time: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_modified_time: Mapped[datetime] = mapped_column(UTCDateTime)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    best_training_job: Mapped[str | None] = mapped_column(String(63), default=None)
    # The Tailor process that orchestrates it (None: nobody, e.g. after a clean shutdown); start time as for jobs.
    owner_pid: Mapped[int | None] = mapped_column(Integer, default=None)
    owner_start_time: Mapped[float | None] = mapped_column(Float, default=None)
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)


class TuningTrialRow(Base):
    __tablename__ = "tuning_trials"
    __table_args__ = (UniqueConstraint("tuning_job_name", "number", name="uq_tuning_trials_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tuning_job_name: Mapped[str] = mapped_column(
        name_type(32), ForeignKey("tuning_jobs.name", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)  # 1-based: the NNN of <tuning-job>-NNN-<hex>
    training_job_name: Mapped[str] = mapped_column(name_type(), unique=True)
    params: Mapped[dict[str, str]] = mapped_column(JSON)  # TunedHyperParameters, as the training job got them
    state: Mapped[str] = mapped_column(String(16))
    objective: Mapped[float | None] = mapped_column(Float, default=None)
    # {"<epochs done>": value} of the objective metric, as reported to the pruner
    intermediate: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    creation_time: Mapped[datetime] = mapped_column(UTCDateTime)
