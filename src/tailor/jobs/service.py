"""TrainingJobService: the one implementation of CreateTrainingJob, Describe, List, Stop, logs and metrics.

Every surface (SDK in-process, REST, SageMaker-compatible API, CLI) calls this. Jobs run in the process that
created them, each supervised by a thread (``tailor.jobs.runner``); at most ``max_concurrent_jobs`` run at
once in one Tailor process, the rest wait visibly (InProgress / Starting, "Waiting for a free slot").

Describe returns SageMaker's DescribeTrainingJob shape as a plain dict with ``datetime`` values; each surface
renders times its own way (ISO strings over REST, epoch seconds over the SageMaker protocol).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from tailor.backends import Backend, local
from tailor.db import Database, utcnow
from tailor.errors import ConflictError, NotFoundError, ValidationError
from tailor.jobs import container, isolation
from tailor.jobs.logs import LOG_NAME, MAX_CHUNK, log_chunk, read_log, shipped_log_uri
from tailor.jobs.runner import JobRunner, reclaim_orphan
from tailor.jobs.spec import TrainingJobSpec, builtin_images, parse_spec
from tailor.jobs.state import TERMINAL, final_metrics, transition, update
from tailor.jobs.store import MetricPointRow, ResourceSampleRow, TrainingJobRow
from tailor.jobs.takeover import claim_orphans
from tailor.membership import Membership
from tailor.resources import arn, fetch, list_request, paginate, row_of
from tailor.settings import Settings
from tailor.storage import Storage, parse_uri

STATUSES = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")
RESTART_REASON = "the server restarted while the job ran"
# Key of the stored spec that marks a trial of a tuning job; not a CreateTrainingJob member, so no request sets it.
TUNING_JOB_ARN = "TuningJobArn"


class TrainingJobService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        storage: Storage,
        backend: Backend | None = None,
        membership: Membership | None = None,
    ) -> None:
        self.settings = settings
        self.membership = membership  # several servers on PostgreSQL (tailor.membership); None on SQLite
        self.db = db
        self.storage = storage
        self.backend = backend or local()  # where training processes run
        self._slots = threading.Semaphore(settings.max_concurrent_jobs)
        self._running: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self._lock = threading.Lock()
        self._me = (os.getpid(), self.backend.start_time(os.getpid()))

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> TrainingJobService:
        if self.membership is None:  # on a shared database, the others' jobs are taken over by lease instead
            self.recover()
        return self

    def adopt_orphans(self) -> list[str]:
        """Take over the running jobs of dead servers (``tailor.jobs.takeover``); the names taken."""
        if self.membership is None:
            return []
        me = self.membership
        taken = []
        for o in claim_orphans(self.db, me):
            if o.previous_host == me.host:  # its training processes outlive it on this machine: end them
                self.backend.end_training(o.pid, o.process_start_time, o.pgid)
            who = f"server {o.previous_owner[:8]}" if o.previous_owner else "its server"
            if o.stop_requested or o.status == "Stopping":
                transition(
                    self.db,
                    o.name,
                    "Stopped",
                    f"Training job stopped: {who} stopped answering while the job was stopping",
                    status="Stopped",
                    training_end_time=utcnow(),
                    final_metrics=final_metrics(self.db, o.name),
                    owner=me.id,
                )
            else:
                transition(
                    self.db,
                    o.name,
                    "Starting",
                    f"Restarting on {me.host}: {who} stopped answering",
                    owner=me.id,
                    pid=None,
                    pgid=None,
                    process_start_time=None,
                    exit_code=None,
                    job_dir=str(self.settings.jobs_dir / o.name),
                    owner_pid=self._me[0],
                    owner_start_time=self._me[1],
                )
                self._launch(TrainingJobSpec.model_validate(o.spec))
            taken.append(o.name)
        return taken

    def recover(self) -> list[str]:
        """Fail jobs whose supervising Tailor process is gone; kill their training process group first."""
        failed: list[str] = []
        with self.db.session() as s:
            rows = s.scalars(select(TrainingJobRow).where(TrainingJobRow.status.in_(("InProgress", "Stopping"))))
            orphans = [(r.name, r.owner_pid, r.owner_start_time, r.pid, r.pgid, r.process_start_time) for r in rows]
        for name, owner, owner_start, pid, pgid, pstart in orphans:
            if name in self._running:
                continue
            if owner != self._me[0] and self.backend.same_process(owner, owner_start):
                continue  # another live Tailor process supervises it
            self.backend.end_training(pid, pstart, pgid)
            reclaim_orphan(self.settings, self.settings.jobs_dir / name)
            transition(
                self.db,
                name,
                "Failed",
                "Training job failed",
                status="Failed",
                failure_reason=f"InternalFailure: {RESTART_REASON}",
                training_end_time=utcnow(),
            )
            failed.append(name)
        return failed

    def close(self, timeout: float | None = None) -> None:
        """Stop this process's jobs (ending them Stopped) and wait for their supervisors."""
        with self._lock:
            running = list(self._running.items())
        for name, (_, event) in running:
            update(self.db, name, stop_requested=True, stop_reason="shutdown")
            event.set()
        limit = timeout if timeout is not None else self.settings.job_stop_grace_seconds + 10
        deadline = time.monotonic() + limit
        for _, (thread, _) in running:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- create --------------------------------------------------------------------------------------
    def create(
        self,
        raw: dict[str, Any] | TrainingJobSpec,
        *,
        authorize_own_code: Callable[[str], object] | None = None,
        tuning_job_arn: str | None = None,
    ) -> dict[str, Any]:
        """Validate everything first; then write the whole row at once and start the job's thread.

        Own code (see ``TrainingJobSpec``) needs ``allow_own_code``. A remote surface passes
        ``authorize_own_code``, which raises ``AccessDeniedError`` unless the caller may run code on the job's
        ARN (``tailor:RunCustomCode``); without it (the in-process SDK and CLI, run by the machine's own user)
        the setting alone decides. ``tuning_job_arn`` marks a trial of a hyperparameter tuning job (shown as
        DescribeTrainingJob's ``TuningJobArn``).
        """
        spec = self.validate(raw, authorize_own_code=authorize_own_code)
        name = spec.TrainingJobName
        now = utcnow()
        stored = spec.to_dict()
        if tuning_job_arn:
            stored[TUNING_JOB_ARN] = tuning_job_arn
        row = TrainingJobRow(
            name=name,
            arn=self.arn(name),
            spec=stored,
            status="InProgress",
            secondary_status="Starting",
            transitions=[
                {
                    "Status": "Starting",
                    "StartTime": now.isoformat(),
                    "StatusMessage": "Preparing the instances for training",
                }
            ],
            final_metrics=[],
            creation_time=now,
            last_modified_time=now,
            job_dir=str(self.settings.jobs_dir / name),
            owner_pid=self._me[0],
            owner_start_time=self._me[1],
            owner_server=self.membership.id if self.membership else None,
        )
        try:
            with self.db.session() as s:
                if s.get(TrainingJobRow, name) is not None:
                    raise ConflictError(f"Training job {name!r} already exists: choose another TrainingJobName")
                s.add(row)
        except IntegrityError:
            raise ConflictError(f"Training job {name!r} already exists: choose another TrainingJobName") from None
        self._launch(spec)
        return self.describe(name)

    def validate(
        self, raw: dict[str, Any] | TrainingJobSpec, *, authorize_own_code: Callable[[str], object] | None = None
    ) -> TrainingJobSpec:
        """Everything CreateTrainingJob checks before it writes a row: the spec, own code, hyperparameters and
        input data; the resolved spec (a tuning job checks its trials' definition with this before any runs)."""
        spec = parse_spec(raw)
        self._check_own_code(spec, authorize_own_code)
        self.backend.check_training(
            instance_type=spec.ResourceConfig.InstanceType,
            instance_count=spec.ResourceConfig.InstanceCount,
            own_code=spec.AlgorithmSpecification.own_code,
        )
        return self._resolve(spec)

    def _check_own_code(self, spec: TrainingJobSpec, authorize: Callable[[str], object] | None) -> None:
        algo = spec.AlgorithmSpecification
        if not algo.own_code:
            return
        what = (
            "ContainerEntrypoint (own code)"
            if algo.ContainerEntrypoint
            else f"TrainingImage {algo.TrainingImage!r} is not a built-in algorithm: it"
        )
        if not self.settings.allow_own_code:
            raise ValidationError(
                f"{what} cannot run: own training code is disabled on this server (its operator enables it with "
                "allow_own_code = true in config.toml or TAILOR_ALLOW_OWN_CODE=1); use TrainingImage "
                + builtin_images()
            )
        if authorize is not None:
            authorize(self.arn(spec.TrainingJobName))
        engine = self.settings.own_code_engine
        if engine == "process":
            if not algo.ContainerEntrypoint:
                raise ValidationError(
                    f"TrainingImage {algo.TrainingImage!r} is not a built-in algorithm: this server runs own code as "
                    "local processes (own_code_engine = 'process'), so give ContainerEntrypoint, the command to run"
                )
            isolation.require_own_code_isolation()
            return
        if algo.builtin_image:
            raise ValidationError(f"own_code_engine = {engine!r} runs TrainingImage: name the image of your code")
        container.require_engine(engine)

    def _resolve(self, spec: TrainingJobSpec) -> TrainingJobSpec:
        selected = spec.AlgorithmSpecification.algorithm()
        if selected is not None:  # the one place a built-in algorithm's hyperparameters are resolved
            spec = spec.model_copy(update={"HyperParameters": selected.resolve(spec.HyperParameters)})
        parse_uri(spec.OutputDataConfig.S3OutputPath)
        if spec.CheckpointConfig:
            parse_uri(spec.CheckpointConfig.S3Uri)
        for channel in spec.InputDataConfig:
            uri = channel.DataSource.S3DataSource.S3Uri
            try:
                found = self.storage.list(uri)
            except NotFoundError:
                found = []
            if not found:
                raise ValidationError(
                    f"Channel {channel.ChannelName!r}: no data at {uri}: upload it first or fix S3Uri"
                )
        return spec

    def _launch(self, spec: TrainingJobSpec) -> None:
        event = threading.Event()
        job = JobRunner(
            settings=self.settings,
            db=self.db,
            storage=self.storage,
            spec=spec,
            slots=self._slots,
            stop_event=event,
            backend=self.backend,
            on_done=self._done,
            owner=self.membership.id if self.membership else None,
        )
        thread = threading.Thread(target=job.run, name=f"job-{spec.TrainingJobName}", daemon=True)
        with self._lock:
            self._running[spec.TrainingJobName] = (thread, event)
        thread.start()

    def _done(self, name: str) -> None:
        with self._lock:
            self._running.pop(name, None)

    def arn(self, name: str) -> str:
        return arn(self.settings.region, self.settings.account_id, "training-job", name)

    # -- read ----------------------------------------------------------------------------------------
    def _row(self, name: str) -> TrainingJobRow:
        return fetch(self.db, TrainingJobRow, name, "Training job")

    def describe(self, name: str) -> dict[str, Any]:
        return _describe(self._row(name))

    def list(self, filters: dict[str, Any] | None = None, /, **kwargs: Any) -> dict[str, Any]:
        """ListTrainingJobs; filters as a request dict (the SageMaker protocol) and/or keywords."""
        rows, token = paginate(self.db, TrainingJobRow, list_request(filters, kwargs), statuses=STATUSES)
        out: dict[str, Any] = {"TrainingJobSummaries": [_summary(r) for r in rows]}
        if token:
            out["NextToken"] = token
        return out

    def counts_by_status(self) -> dict[str, int]:
        with self.db.session() as s:
            found = dict(s.execute(select(TrainingJobRow.status, func.count()).group_by(TrainingJobRow.status)).all())
        return {status: int(found.get(status, 0)) for status in STATUSES}

    # -- stop ----------------------------------------------------------------------------------------
    def stop(self, name: str, reason: str = "user") -> dict[str, Any]:
        """StopTrainingJob: SIGTERM now, SIGKILL after the grace period; the job ends Stopped.

        ``reason`` (<= 32 characters) is recorded as the stop's cause: "user", or e.g. "early_stop" when a tuning
        job's early stopping ends a trial."""
        with self.db.session() as s:
            row = row_of(s, TrainingJobRow, name, "Training job", lock=True)
            if row.status not in ("InProgress", "Stopping"):
                raise ValidationError(f"Training job {name!r} is {row.status}: only InProgress jobs can be stopped")
            row.stop_requested = True
            row.stop_reason = row.stop_reason or reason
            row.last_modified_time = utcnow()
        with self._lock:
            local = self._running.get(name)
        if local:
            local[1].set()
        return self.describe(name)

    def wait(self, name: str, timeout: float | None = None, poll: float = 0.5) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            desc = self.describe(name)
            if desc["TrainingJobStatus"] in TERMINAL:
                return desc
            if deadline is not None and time.monotonic() >= deadline:
                return desc
            time.sleep(poll)

    # -- logs, metrics, resources --------------------------------------------------------------------
    def logs(self, name: str, offset: int = 0, limit: int = 1 << 20) -> dict[str, Any]:
        """A chunk of the job log from a byte offset; ``Complete`` once the job ended and all is read."""
        row = self._row(name)
        done = row.status in TERMINAL
        path = self._log_path(row)
        if path is None:  # on another machine: its copy in the shared store, read by range
            uri, size = self._shipped_log(row)
            chunk = log_chunk(self.storage.read_range(uri, offset, min(limit, MAX_CHUNK)), offset, limit)
            complete = done and chunk.next_offset >= size  # the runner copies it whole before the end
        else:
            chunk = read_log(path, offset, limit)
            complete = done and read_log(path, chunk.next_offset, 1).text == ""
        return {"Text": chunk.text, "NextOffset": chunk.next_offset, "Complete": complete}

    def _log_path(self, row: TrainingJobRow) -> Path | None:
        """The job's own dir: under another server's home when that server ran it, readable on its machine.
        None when that machine is another one (the job's owner runs on another host)."""
        path = Path(row.job_dir) / LOG_NAME
        if path.exists():
            return path
        here = self.settings.jobs_dir / row.name / LOG_NAME
        if here.exists() or Path(row.job_dir).is_relative_to(self.settings.home):
            return here
        me = self.membership
        host = me.host_of(row.owner_server) if me is not None and row.owner_server else None
        if me is None or host is None or host == me.host:
            return here  # not written yet (a queued job), on this machine
        return None

    def _shipped_log(self, row: TrainingJobRow) -> tuple[str, int]:
        """The URI and size (one HEAD) of the copy the owner keeps in the shared store (every few seconds, and
        whole before the job ends); when there is none, say where the log is rather than answer an empty log that
        claims to be whole."""
        output = (row.spec.get("OutputDataConfig") or {}).get("S3OutputPath")
        uri = shipped_log_uri(output, row.name) if output else None
        if uri and self.storage.remote:
            with contextlib.suppress(NotFoundError):
                return uri, self.storage.size(uri)
        host = self.membership.host_of(row.owner_server) if self.membership else None
        raise NotFoundError(
            f"the log of training job {row.name!r} is on host {host} (in {Path(row.job_dir) / LOG_NAME}), the "
            "machine of the server that runs it, and has no copy in S3 (servers share logs through an S3 store): "
            "read it through a server on that machine"
        )

    def metrics(self, name: str, metric_name: str | None = None) -> list[dict[str, Any]]:
        self._row(name)
        with self.db.session() as s:
            q = select(MetricPointRow).where(MetricPointRow.job_name == name)
            if metric_name:
                q = q.where(MetricPointRow.name == metric_name)
            rows = s.scalars(q.order_by(MetricPointRow.id)).all()
            return [{"MetricName": r.name, "Value": r.value, "Timestamp": r.timestamp, "Epoch": r.epoch} for r in rows]

    def resources(self, name: str) -> list[dict[str, Any]]:
        self._row(name)
        with self.db.session() as s:
            q = select(ResourceSampleRow).where(ResourceSampleRow.job_name == name).order_by(ResourceSampleRow.id)
            return [
                {
                    "Timestamp": r.timestamp,
                    "CPUUtilization": r.cpu_percent,
                    "MemoryRSSBytes": r.rss_bytes,
                    "GPUUtilization": r.gpu_utilization,
                    "GPUMemoryBytes": r.gpu_memory_bytes,
                }
                for r in s.scalars(q)
            ]


# -- shapes ----------------------------------------------------------------------------------------------


def _describe(row: TrainingJobRow) -> dict[str, Any]:
    spec = dict(row.spec)
    tuning_job_arn = spec.pop(TUNING_JOB_ARN, None)
    algo = dict(spec["AlgorithmSpecification"])
    algo["MetricDefinitions"] = TrainingJobSpec.model_validate(spec).metric_definitions()
    out: dict[str, Any] = {
        "TrainingJobName": row.name,
        "TrainingJobArn": row.arn,
        "TrainingJobStatus": row.status,
        "SecondaryStatus": row.secondary_status,
        "HyperParameters": spec.get("HyperParameters", {}),
        "AlgorithmSpecification": algo,
        "InputDataConfig": spec.get("InputDataConfig", []),
        "OutputDataConfig": spec["OutputDataConfig"],
        "ResourceConfig": spec.get("ResourceConfig", {}),
        "StoppingCondition": spec.get("StoppingCondition", {}),
        "CreationTime": row.creation_time,
        "LastModifiedTime": row.last_modified_time,
        "SecondaryStatusTransitions": [_transition(t) for t in row.transitions],
        "FinalMetricDataList": [
            {**m, "Timestamp": datetime.fromisoformat(m["Timestamp"])} for m in row.final_metrics or []
        ],
        "EnableNetworkIsolation": bool(spec.get("EnableNetworkIsolation", False)),
        "EnableManagedSpotTraining": bool(spec.get("EnableManagedSpotTraining", False)),
    }
    for key in ("RoleArn", "CheckpointConfig", "Environment"):
        if spec.get(key):
            out[key] = spec[key]
    if tuning_job_arn:
        out["TuningJobArn"] = tuning_job_arn
    if row.failure_reason:
        out["FailureReason"] = row.failure_reason
    if row.model_artifact:
        out["ModelArtifacts"] = {"S3ModelArtifacts": row.model_artifact}
    if row.training_start_time:
        out["TrainingStartTime"] = row.training_start_time
    if row.training_end_time:
        out["TrainingEndTime"] = row.training_end_time
        if row.training_start_time:
            seconds = max(0, round((row.training_end_time - row.training_start_time).total_seconds()))
            out["TrainingTimeInSeconds"] = seconds
            out["BillableTimeInSeconds"] = seconds
    return out


def _transition(t: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"Status": t["Status"], "StartTime": datetime.fromisoformat(t["StartTime"])}
    if t.get("EndTime"):
        out["EndTime"] = datetime.fromisoformat(t["EndTime"])
    out["StatusMessage"] = t.get("StatusMessage", "")
    return out


def _summary(row: TrainingJobRow) -> dict[str, Any]:
    out: dict[str, Any] = {
        "TrainingJobName": row.name,
        "TrainingJobArn": row.arn,
        "CreationTime": row.creation_time,
        "LastModifiedTime": row.last_modified_time,
        "TrainingJobStatus": row.status,
        "SecondaryStatus": row.secondary_status,
    }
    if row.training_end_time:
        out["TrainingEndTime"] = row.training_end_time
    return out
