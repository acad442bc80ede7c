"""Runs one training job: wait for a slot, stage data, launch the algorithm, supervise it, upload the model.

The job dir follows the training contract (``tailor.jobs.contract``). The command starts through the backend
(``tailor.backends``) in its own process group, so stop and timeouts reach every process it started; no
training process sees the server's environment or secrets, and as root each runs under its own uid in a
sandbox (``tailor.jobs.isolation``) or, for own code with an engine, in a container (``tailor.jobs.container``).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from tailor.backends import Backend, TrainingInputs, TrainingProcess
from tailor.db import Database, utcnow
from tailor.errors import (
    ALGORITHM_FAILURE,
    CAPACITY_FAILURE,
    PLATFORM_FAILURE,
    ServiceUnavailableError,
    TailorError,
)
from tailor.jobs import container, isolation, transfer
from tailor.jobs.contract import JobContract
from tailor.jobs.logs import LOG_NAME, LogWriter, shipped_log_uri, tail
from tailor.jobs.metrics import MetricParser
from tailor.jobs.spec import TrainingJobSpec
from tailor.jobs.state import HANDED_OVER, final_metrics, set_message, stop_requested, transition, update
from tailor.jobs.store import MetricPointRow, ResourceSampleRow, TrainingJobRow
from tailor.settings import Settings
from tailor.storage import Storage, join_uri

FAILURE_REASON_MAX = 1024  # SageMaker keeps the first 1024 characters of output/failure
_POLL_S = 0.2  # supervisor tick: stop/timeout latency and exit detection
_DB_POLL_S = 0.5  # how often a stop requested by another process is looked for


class JobStopped(Exception):
    """Raised inside the runner when a stop arrives before the algorithm started."""


# -- the runner ----------------------------------------------------------------------------------------


class JobRunner:
    """Supervises one job from slot to terminal state. ``run`` is the body of the job's thread."""

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        storage: Storage,
        spec: TrainingJobSpec,
        slots: threading.Semaphore,
        stop_event: threading.Event,
        backend: Backend,
        on_done: Callable[[str], None] | None = None,
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.storage = storage
        self.spec = spec
        self.name = spec.TrainingJobName
        self.dir = settings.jobs_dir / self.name
        self.dir.mkdir(mode=0o700, exist_ok=True)  # before the log opens in it: owner only, like the home
        self.slots = slots
        self.stop_event = stop_event
        self.on_done = on_done
        self.backend = backend  # where the algorithm's processes run
        # The server id that owns the job (several servers on PostgreSQL): every write is fenced on it, and a
        # job taken over by another server is ended here without a word in its row (None: SQLite).
        self.owner = owner
        self.contract = JobContract(settings, spec, self.dir)
        self.log = LogWriter(self.dir / LOG_NAME)
        self.parser = MetricParser(spec.metric_definitions())
        self._last_db_poll = 0.0
        self.uid: int | None = None  # the own-code uid this job claimed (released when it ends)
        # Several servers on one database and one S3 store: the log is copied to S3 as it grows, so a server on
        # another machine can read it (the job dir is on this one). One server, or local buckets: not needed.
        shared = owner is not None and self.storage.remote
        ship_to = shipped_log_uri(spec.OutputDataConfig.S3OutputPath, self.name) if shared else None
        self.shipper = transfer.LogShipper(storage, self.dir / LOG_NAME, ship_to)

    # The job's whole life. Every path ends in exactly one terminal transition.
    def run(self) -> None:
        have_slot = False
        try:
            have_slot = self._wait_for_slot()
            start = utcnow()
            self._prepare(start)
            rc, reason = self._train(start)
            self._finish(rc, reason)
        except JobStopped:
            self._end_stopped(self._stop_reason() or "user")
        except TailorError as err:
            self._fail(str(err))
        except Exception as err:  # a bug must still end the job, with a reason, not leave it InProgress
            self._fail(f"InternalFailure: {type(err).__name__}: {err}")
        finally:
            if have_slot:
                self.slots.release()
            isolation.release(self.uid)
            self.log.close()
            if self.on_done:
                self.on_done(self.name)

    def _stop_reason(self) -> str | None:
        if self.stop_event.is_set():
            return stop_requested(self.db, self.name, owner=self.owner) or "user"
        now = time.monotonic()
        if now - self._last_db_poll >= _DB_POLL_S:
            self._last_db_poll = now
            reason = stop_requested(self.db, self.name, owner=self.owner)
            if reason:
                self.stop_event.set()
                return reason
        return None

    def _wait_for_slot(self) -> bool:
        limit = self.settings.max_concurrent_jobs
        if self.slots.acquire(blocking=False):
            return True
        set_message(self.db, self.name, f"Waiting for a free slot: {limit} job(s) already running", owner=self.owner)
        self.log.system(f"waiting for a free slot (max_concurrent_jobs={limit})")
        while not self.slots.acquire(timeout=_POLL_S):
            if self._stop_reason():
                raise JobStopped
        return True

    # -- Downloading ---------------------------------------------------------------------------------
    def _prepare(self, start: datetime) -> None:
        transition(
            self.db, self.name, "Downloading", "Downloading input data", training_start_time=start, owner=self.owner
        )
        self.contract.write_config()
        spec = self.spec
        if self.backend.remote:  # the instances read their channels and checkpoints from storage themselves
            return
        for channel in spec.InputDataConfig:
            self._stage(channel.ChannelName, channel.DataSource.S3DataSource.S3Uri)
        if spec.CheckpointConfig:
            self._restore_checkpoints(spec.CheckpointConfig.S3Uri)

    def _stage(self, channel: str, uri: str) -> None:
        def check_stop() -> None:
            if self._stop_reason():
                raise JobStopped

        def progress(line: str) -> None:
            set_message(self.db, self.name, line, owner=self.owner)

        dest = self.dir / "input" / "data" / channel
        count, size = transfer.stage_channel(
            self.storage, channel, uri, dest, check_stop=check_stop, on_progress=progress
        )
        self.log.system(f"staged channel {channel!r}: {count} objects, {size / 1e6:.1f} MB from {uri}")

    def _restore_checkpoints(self, uri: str) -> None:
        transfer.restore_checkpoints(self.storage, uri, self.dir / "checkpoints")

    # -- Training ------------------------------------------------------------------------------------
    # -- isolation -----------------------------------------------------------------------------------
    def _isolate(self, cmd: list[str]) -> tuple[list[str], dict[str, str]]:
        """The command line and environment that actually start the job: sandboxed, as a container, or (not
        root) as the server's user with the scrubbed environment."""
        algo = self.spec.AlgorithmSpecification
        engine = self.settings.own_code_engine
        if algo.own_code and engine != "process":
            return self._container(engine)
        env = self.contract.environment()
        problem = isolation.sandbox_problem()
        if problem is not None:
            if algo.own_code and isolation.is_root():
                raise ServiceUnavailableError(f"own code cannot be isolated on this machine: {problem}")
            self.log.system(f"isolation: {problem}: the job runs as the server's user, with a scrubbed environment")
            return cmd, env
        if algo.own_code:
            self.uid = uid = isolation.claim_own_code_uid(self.settings, self.name)
        else:
            uid = isolation.builtin_uid(self.settings)
            self._own_builtin_dirs(uid)
        isolation.own_dirs([self.dir], uid)
        plan = isolation.plan(self.settings, self.dir, uid, builtin=algo.builtin)
        self.log.system(f"isolation: uid {uid}, hidden: {', '.join(plan['covers'])}")
        return isolation.wrap(cmd, plan), env

    def _own_builtin_dirs(self, uid: int) -> None:
        """The built-in algorithm's cache (and the zoo under the home) belong to its uid."""
        cache, zoo = isolation.builtin_dirs(self.settings)
        mine = [cache] + ([zoo] if zoo.parent == self.settings.home else [])
        for d in mine:
            d.mkdir(mode=0o700, exist_ok=True)
            if d.stat().st_uid != uid:
                isolation.own_dirs([d], uid)

    def _container(self, engine: str) -> tuple[list[str], dict[str, str]]:
        exe = container.require_engine(engine)
        algo = self.spec.AlgorithmSpecification
        root = isolation.is_root()
        if root:
            self.uid = isolation.claim_own_code_uid(self.settings, self.name)
            isolation.own_dirs([self.dir], self.uid)
        job_vars = self.contract.job_variables(Path(container.CONTAINER_ROOT))
        cmd = container.command(
            exe,
            job_name=self.name,
            image=algo.TrainingImage or "",
            entrypoint=algo.ContainerEntrypoint,
            arguments=algo.ContainerArguments,
            job_dir=self.dir,
            env_keys=list(job_vars),
            uid=self.uid,
            network=self.settings.own_code_network,
        )
        self.log.system(f"isolation: {engine} container, uid {self.uid if root else 'of the engine'}")
        # The engine client is Tailor's own process: it gets the server's environment (engine sockets); the
        # container receives only the job's variables, named on the command line.
        return cmd, {**os.environ, **job_vars}

    def _reclaim(self) -> None:
        if self.settings.own_code_engine != "process" and self.spec.AlgorithmSpecification.own_code:
            container.remove(self.settings.own_code_engine, self.name)
        removed = isolation.reclaim(self.dir, self.uid)
        if removed:
            self.log.system(f"removed links and special files the job left in its dir: {', '.join(removed[:10])}")

    def _train(self, start: datetime) -> tuple[int, str | None]:
        if self._stop_reason():
            raise JobStopped
        try:
            return self._run_process(start)
        finally:
            self._reclaim()

    def _run_process(self, start: datetime) -> tuple[int, str | None]:
        remote = self.backend.remote
        cmd = self.contract.command(per_instance=remote)
        self.log.system("launching: " + " ".join(cmd))
        # On a cluster each instance runs the command on its node: nothing here to sandbox.
        cmd, env = (cmd, self.contract.environment()) if remote else self._isolate(cmd)
        extra = {"inputs": self._inputs()} if remote else {}
        try:
            proc, pgid = self.backend.start_training(cmd, cwd=self.dir, env=env, **extra)
        except OSError as err:
            raise TailorError(f"{ALGORITHM_FAILURE}cannot start {cmd[0]!r}: {err.strerror or err}") from None
        transition(
            self.db,
            self.name,
            "Training",
            "Training in progress",
            pid=proc.pid,
            pgid=pgid,
            process_start_time=self.backend.start_time(proc.pid),
            owner=self.owner,
        )
        reader = threading.Thread(target=self._pump, args=(proc,), name=f"log-{self.name}", daemon=True)
        reader.start()
        stop_reason = self._supervise(proc, pgid, start)
        reader.join(timeout=10)
        # Anything the algorithm left behind (data-loader workers) goes with it.
        self.backend.signal_group(pgid, signal.SIGKILL)
        update(self.db, self.name, exit_code=proc.returncode, owner=self.owner)
        return proc.returncode, stop_reason

    def _inputs(self) -> TrainingInputs:
        spec = self.spec
        # Without a CheckpointConfig the instances still checkpoint to storage, so a restart after a lost node
        # resumes: under the job's own output prefix.
        default = join_uri(spec.OutputDataConfig.S3OutputPath, self.name, "checkpoints")
        return TrainingInputs(
            job_name=self.name,
            channels={c.ChannelName: c.DataSource.S3DataSource.S3Uri for c in spec.InputDataConfig},
            checkpoint_uri=spec.CheckpointConfig.S3Uri if spec.CheckpointConfig else default,
            instance_type=spec.ResourceConfig.InstanceType,
            instance_count=spec.ResourceConfig.InstanceCount,
        )

    def _pump(self, proc: TrainingProcess) -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            self.log.write(line)
            change = self.backend.status_change(line)
            if change is not None and not self.stop_event.is_set():
                transition(self.db, self.name, *change)
            points = self.parser.parse(line)
            if points:
                now = utcnow()
                with self.db.session() as s:
                    s.add_all(
                        MetricPointRow(job_name=self.name, timestamp=now, name=p.name, value=p.value, epoch=p.epoch)
                        for p in points
                    )
        proc.stdout.close()

    def _supervise(self, proc: TrainingProcess, pgid: int, start: datetime) -> str | None:
        """Wait for exit; enforce stop and MaxRuntimeInSeconds (SIGTERM, grace, SIGKILL); sample resources."""
        max_rt = self.spec.StoppingCondition.MaxRuntimeInSeconds
        deadline = start.timestamp() + max_rt if max_rt else None
        sampler = self.backend.sampler(proc.pid)
        interval = self.settings.job_sample_interval_seconds
        next_sample = time.monotonic() + min(1.0, interval)
        stop_reason: str | None = None
        kill_at: float | None = None
        while proc.poll() is None:
            time.sleep(_POLL_S)
            if stop_reason is None:
                stop_reason = self._stop_reason()
                if stop_reason is None and deadline is not None and time.time() >= deadline:
                    stop_reason = "max_runtime"
                    update(self.db, self.name, stop_requested=True, stop_reason="max_runtime", owner=self.owner)
                if stop_reason is not None:
                    self._begin_stop(stop_reason, pgid)
                    kill_at = time.monotonic() + self.settings.job_stop_grace_seconds
            if kill_at is not None and time.monotonic() >= kill_at:
                self.log.system(f"still running {self.settings.job_stop_grace_seconds:g} s after SIGTERM: SIGKILL")
                self.backend.signal_group(pgid, signal.SIGKILL)
                kill_at = None
            if time.monotonic() >= next_sample:
                next_sample = time.monotonic() + interval
                self._sample(sampler)
            if self.shipper.due():
                self.shipper.ship()
        return stop_reason

    def _begin_stop(self, reason: str, pgid: int) -> None:
        if reason == "max_runtime":
            msg = f"MaxRuntimeInSeconds ({self.spec.StoppingCondition.MaxRuntimeInSeconds} s) exceeded: stopping"
        elif reason == "shutdown":
            msg = "Tailor is shutting down: stopping the job"
        elif reason == HANDED_OVER:
            msg = "Another server took this job over: ending its process here"
        else:
            msg = "Stop requested: sent SIGTERM to the training process"
        self.log.system(msg)
        transition(self.db, self.name, "Stopping", msg, status="Stopping", owner=self.owner)
        self.backend.signal_group(pgid, signal.SIGTERM)

    def _sample(self, sampler: Any) -> None:
        values = sampler.sample()
        if values is None:
            return
        with self.db.session() as s:
            s.add(ResourceSampleRow(job_name=self.name, timestamp=utcnow(), **values))

    # -- Uploading and the end -----------------------------------------------------------------------
    def _finish(self, rc: int, stop_reason: str | None) -> None:
        if stop_reason is not None:
            self._end_stopped(stop_reason)
            return
        if rc != 0:
            self._fail(self._failure_reason(rc))
            return
        transition(self.db, self.name, "Uploading", "Uploading generated training model", owner=self.owner)
        try:
            artifact = self._upload_model(required=True)
            self._sync_checkpoints()
        except TailorError as err:
            self._fail(f"Uploading the model failed: {err}")
            return
        end = utcnow()
        self.log.system(f"completed; model at {artifact}")
        self.shipper.ship()  # the whole log is in the shared store before the job reads as ended
        transition(
            self.db,
            self.name,
            "Completed",
            "Training job completed",
            status="Completed",
            model_artifact=artifact,
            training_end_time=end,
            final_metrics=self._final_metrics(end),
            owner=self.owner,
        )

    def _end_stopped(self, reason: str) -> None:
        if reason == HANDED_OVER:
            self.log.system("another server took this job over: its process here is ended, nothing uploaded")
            return
        artifact = None
        try:  # as SageMaker: a model saved before the stop is still uploaded (best effort)
            artifact = self._upload_model(required=False)
            self._sync_checkpoints()
        except TailorError as err:
            self.log.system(f"could not upload the partial model after the stop: {err}")
        end = utcnow()
        if reason == "max_runtime":
            secondary, msg = "MaxRuntimeExceeded", "Training job stopped: MaxRuntimeInSeconds exceeded"
        elif reason == "shutdown":
            secondary, msg = "Stopped", "Training job stopped because Tailor shut down"
        else:
            secondary, msg = "Stopped", "Training job stopped"
        self.log.system(msg)
        self.shipper.ship()
        transition(
            self.db,
            self.name,
            secondary,
            msg,
            status="Stopped",
            model_artifact=artifact,
            training_end_time=end,
            final_metrics=self._final_metrics(end),
            owner=self.owner,
        )

    def _fail(self, reason: str) -> None:
        reason = self._public(reason)[:FAILURE_REASON_MAX]
        end = utcnow()
        self.log.system(f"failed: {reason}")
        self.shipper.ship()
        with self.db.session() as s:
            row = s.get(TrainingJobRow, self.name)
            started = row is not None and row.training_start_time is not None
        transition(
            self.db,
            self.name,
            "Failed",
            "Training job failed",
            status="Failed",
            failure_reason=reason,
            training_end_time=end if started else None,
            final_metrics=self._final_metrics(end),
            owner=self.owner,
        )

    def _public(self, text: str) -> str:
        """FailureReason is shown to API callers: a staged file is named by its channel's URI (the user's key),
        the rest of the job dir as SageMaker's container root /opt/ml, never the server's own paths."""
        channels = {c.ChannelName: c.DataSource.S3DataSource.S3Uri for c in self.spec.InputDataConfig}
        data = self.dir / "input" / "data"
        for name, uri in sorted(channels.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(f"{data / name}/", f"{uri.rstrip('/')}/").replace(str(data / name), uri)
        return text.replace(str(self.dir), "/opt/ml").replace(str(self.settings.home), "$TAILOR_HOME")

    def _failure_reason(self, rc: int) -> str:
        failure = self.dir / "output" / "failure"
        if failure.is_file():
            text = failure.read_text(encoding="utf-8", errors="replace").strip()
            if text.startswith((ALGORITHM_FAILURE.split(":")[0], CAPACITY_FAILURE, PLATFORM_FAILURE)):
                return text  # already classified (by the algorithm, or by the cluster backend's driver)
            if text:
                return f"{ALGORITHM_FAILURE}{text}"
        how = f"killed by signal {-rc}" if rc < 0 else f"exited with code {rc}"
        return f"{ALGORITHM_FAILURE}the algorithm {how}; last log lines:\n{tail(self.dir / LOG_NAME, 8)}"

    def model_uri(self) -> str:
        return join_uri(self.spec.OutputDataConfig.S3OutputPath, self.name, "output", "model.tar.gz")

    def _upload_model(self, *, required: bool) -> str | None:
        return transfer.upload_model(self.storage, self.dir, self.model_uri(), required=required)

    def _sync_checkpoints(self) -> None:
        if self.spec.CheckpointConfig is not None:
            transfer.sync_checkpoints(self.storage, self.dir / "checkpoints", self.spec.CheckpointConfig.S3Uri)

    def _final_metrics(self, end: datetime) -> list[dict[str, Any]]:
        return final_metrics(self.db, self.name)


def reclaim_orphan(settings: Settings, job_dir: Path) -> None:
    """A job dir left by a server that died mid-job: stop what its own-code uid still runs, hand it back."""
    try:
        owner = job_dir.stat().st_uid
    except OSError:
        return
    if owner == os.geteuid():
        return
    base = settings.job_uid_base
    isolation.reclaim(job_dir, owner if base < owner < base + settings.job_uid_count else None)
