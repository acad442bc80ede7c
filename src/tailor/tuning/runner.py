"""One tuning job's orchestration: a thread that asks the study for trials, runs each as a training job, feeds
the objective metric back per epoch (the pruner may stop a trial early) and ends the tuning job.

Each pass (every ``POLL_S``): honour a stop request or MaxRuntimeInSeconds, settle the trials whose training
job moved (new epochs, an end), pick the best, launch trials while fewer than ``min(MaxParallelTrainingJobs,
max_concurrent_jobs)`` run, and end when the budget is spent and nothing runs. Every decision is written to the
trial rows first, so a restarted server rebuilds the study from them and carries on (``resumed``).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState
from sqlalchemy import select

from tailor.db import Database, utcnow
from tailor.errors import TailorError
from tailor.jobs.service import RESTART_REASON, TrainingJobService
from tailor.jobs.state import TERMINAL, set_message
from tailor.jobs.store import MetricPointRow, TrainingJobRow
from tailor.settings import Settings
from tailor.tuning import study as search
from tailor.tuning.shapes import best_trial
from tailor.tuning.spec import TuningJobSpec, trial_request
from tailor.tuning.store import TuningJobRow, TuningTrialRow

log = logging.getLogger("tailor.tuning")
POLL_S = 1.0
# Stop reasons this module gives StopTrainingJob (each <= 32 characters, TrainingJobRow.stop_reason).
EARLY_STOP = "early_stop"
TUNING_STOP = "tuning_job_stopped"
TUNING_RUNTIME = "tuning_max_runtime"
SHUTDOWN = "shutdown"  # jobs' own reason when Tailor shuts down: the trial is retried after the restart
# The first trials all failing means the definition cannot train (bad data, a crashing image): stop there.
FIRST_FAILURES = 3


def trial_outcome(job: TrainingJobRow | None, metric: str, intermediate: dict[str, float]) -> tuple[str, float | None]:
    """A finished training job's trial state and objective value (the last intermediate one when it stopped)."""
    last = intermediate[max(intermediate, key=int)] if intermediate else None
    if job is None:  # recorded, then Tailor stopped before its training job was created
        return "interrupted", None
    if job.status == "Completed":
        final = [m["Value"] for m in job.final_metrics or [] if m.get("MetricName") == metric]
        return ("complete", float(final[-1])) if final else ("failed", None)
    if job.status == "Stopped":
        if job.stop_reason == EARLY_STOP:
            return "pruned", last
        return ("interrupted", None) if job.stop_reason == SHUTDOWN else ("stopped", last)
    if job.failure_reason and RESTART_REASON in job.failure_reason:
        return "interrupted", None
    return "failed", None


class TuningRunner:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        jobs: TrainingJobService,
        spec: TuningJobSpec,
        arn: str,
        *,
        shutdown: threading.Event,
        on_done: Callable[[str], None],
        detach: bool,
    ) -> None:
        self.settings, self.db, self.jobs, self.spec, self.arn = settings, db, jobs, spec, arn
        self.name = spec.HyperParameterTuningJobName
        self.shutdown = shutdown
        self.on_done = on_done
        self.detach = detach  # on shutdown: leave the job InProgress for the next server (else end it Stopped)
        assert spec.objective is not None
        self.metric, self.maximize = spec.objective.MetricName, spec.objective.Type == "Maximize"
        self.study: optuna.Study | None = None
        self.live: dict[int, optuna.trial.Trial] = {}  # running trials' Optuna handles, by trial number
        self.seen: dict[int, int] = {}  # last MetricPointRow id read per trial
        self.stopping: str | None = None

    # The whole life; every path but a detach ends in one terminal status.
    def run(self) -> None:
        try:
            self.study = self._build_study()
            while not self.shutdown.is_set():
                if self._pass():
                    return
                self.shutdown.wait(POLL_S)
            self._on_shutdown()
        except Exception as err:  # a bug must still end the tuning job with a reason
            log.exception("tuning job %s crashed", self.name)
            self._end("Failed", f"InternalFailure: {type(err).__name__}: {err}")
        finally:
            self.on_done(self.name)

    def _pass(self) -> bool:
        row = self._row()
        if row.status not in ("InProgress", "Stopping"):
            return True
        trials = self._trials()
        if row.stop_requested and self.stopping is None:
            self._stop_running(trials, TUNING_STOP)
        limit = self.spec.HyperParameterTuningJobConfig.ResourceLimits.MaxRuntimeInSeconds
        if limit and self.stopping is None and (utcnow() - row.creation_time).total_seconds() >= limit:
            self._stop_running(trials, TUNING_RUNTIME)
        self._settle(trials)
        trials = self._trials()
        self._pick_best(trials)
        running = [t for t in trials if t.state == "running"]
        if self.stopping is None:
            if self._failing(trials):
                return True
            self._launch(trials, running)
            trials = self._trials()
            running = [t for t in trials if t.state == "running"]
        if running or (self.stopping is None and self._remaining(trials) > 0):
            return False
        self._finish(trials)
        return True

    # -- the study -----------------------------------------------------------------------------------
    def _build_study(self) -> optuna.Study:
        created = search.create(self.spec)
        self._settle(self._trials(), resuming=True)  # trials whose training job ended while nobody watched
        for parent in self._parents():
            search.seed(created, self.spec, parent)
        trials = self._trials()
        search.seed(created, self.spec, [_finished(t) for t in trials if t.state not in ("running", "interrupted")])
        if trials and self.spec.HyperParameterTuningJobConfig.Strategy == "Grid":
            search.enqueue_remaining(created, self.spec, [t.params for t in trials if t.state != "interrupted"])
        return created

    def _parents(self) -> list[list[search.Finished]]:
        warm = self.spec.WarmStartConfig
        if warm is None:
            return []
        names = [p.HyperParameterTuningJobName for p in warm.ParentHyperParameterTuningJobs]
        with self.db.session() as s:
            specs = {r.name: r.spec for r in s.scalars(select(TuningJobRow).where(TuningJobRow.name.in_(names)))}
            rows = s.scalars(select(TuningTrialRow).where(TuningTrialRow.tuning_job_name.in_(names))).all()
        same = {n for n, sp in specs.items() if _objective(sp) == (self.metric, self.maximize)}
        return [[_finished(t) for t in rows if t.tuning_job_name == n and t.state != "running"] for n in sorted(same)]

    # -- trials --------------------------------------------------------------------------------------
    def _trials(self) -> list[TuningTrialRow]:
        with self.db.session() as s:
            q = select(TuningTrialRow).where(TuningTrialRow.tuning_job_name == self.name)
            return list(s.scalars(q.order_by(TuningTrialRow.number)))

    def _settle(self, trials: list[TuningTrialRow], resuming: bool = False) -> None:
        for t in trials:
            if t.state != "running":
                continue
            with self.db.session() as s:
                job = s.get(TrainingJobRow, t.training_job_name)
                s.expunge_all()
            if not resuming:
                self._report(t, job)
            if job is not None and job.status not in TERMINAL:
                continue
            t = self._trial(t.number)
            state, objective = trial_outcome(job, self.metric, t.intermediate)
            reason = t.reason
            if state == "failed" and job is not None and job.status == "Completed":
                reason = f"the training job did not emit the objective metric {self.metric!r}"
            elif state == "failed" and job is not None:
                reason = job.failure_reason
            elif state == "interrupted":
                reason = "Tailor restarted while the training job ran: another trial takes its place"
            self._save(t.number, state=state, objective=objective, reason=reason)
            if state == "pruned" and reason:
                set_message(self.db, t.training_job_name, reason)  # the training job's last transition says why
            handle = self.live.pop(t.number, None)
            if handle is not None and self.study is not None:
                optuna_state = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED}.get(state)
                search.tell(self.study, handle, optuna_state or TrialState.FAIL, objective)

    def _report(self, t: TuningTrialRow, job: TrainingJobRow | None) -> None:
        """New epochs of the objective metric go to the pruner; an unpromising trial is stopped early."""
        with self.db.session() as s:
            q = select(MetricPointRow).where(
                MetricPointRow.job_name == t.training_job_name,
                MetricPointRow.name == self.metric,
                MetricPointRow.id > self.seen.get(t.number, 0),
            )
            points = [(p.id, p.epoch, p.value) for p in s.scalars(q.order_by(MetricPointRow.id))]
        if not points:
            return
        self.seen[t.number] = points[-1][0]
        values = dict(t.intermediate)
        handle = self.live.get(t.number)
        for _, epoch, value in points:
            if epoch is None:
                continue
            step = epoch + 1  # epochs done (the log counts from Epoch[0])
            if str(step) not in values and handle is not None:
                handle.report(value, step)
            values[str(step)] = value
        self._save(t.number, intermediate=values)
        if not (handle is not None and search.prunes(self.spec) and job is not None and job.status == "InProgress"):
            return
        if t.reason is None and handle.should_prune():
            epoch = max(values, key=int)
            reason = f"Stopped early by Hyperband at epoch {epoch}: {self.metric} {values[epoch]:.6g}"
            self._save(t.number, reason=reason)
            log.info("tuning job %s: %s", self.name, reason)
            with contextlib.suppress(TailorError):  # it ended meanwhile: _settle records how
                self.jobs.stop(t.training_job_name, reason=EARLY_STOP)

    def _launch(self, trials: list[TuningTrialRow], running: list[TuningTrialRow]) -> None:
        assert self.study is not None
        limits = self.spec.HyperParameterTuningJobConfig.ResourceLimits
        parallel = min(limits.MaxParallelTrainingJobs, self.settings.max_concurrent_jobs)
        room = min(parallel - len(running), self._remaining(trials))
        number = max((t.number for t in trials), default=0)
        dists = search.distributions(self.spec)
        for _ in range(max(0, room)):
            number += 1
            handle = self.study.ask(dists)
            params = search.to_strings(self.spec, handle.params)
            name = f"{self.name}-{number:03d}-{secrets.token_hex(4)}"
            with self.db.session() as s:
                s.add(
                    TuningTrialRow(
                        tuning_job_name=self.name,
                        number=number,
                        training_job_name=name,
                        params=params,
                        state="running",
                        intermediate={},
                        creation_time=utcnow(),
                    )
                )
            try:
                self.jobs.create(trial_request(self.spec, name, params), tuning_job_arn=self.arn)
            except TailorError as err:
                self._save(number, state="failed", reason=f"CreateTrainingJob failed: {err}")
                search.tell(self.study, handle, TrialState.FAIL, None)
                continue
            self.live[number] = handle
            self._touch()

    def _remaining(self, trials: list[TuningTrialRow]) -> int:
        # A trial a restart interrupted does not count: another one takes its place.
        return self.spec.max_training_jobs - sum(t.state != "interrupted" for t in trials)

    def _failing(self, trials: list[TuningTrialRow]) -> bool:
        first = [t for t in trials if t.state != "interrupted"][:FIRST_FAILURES]
        needed = min(FIRST_FAILURES, self.spec.max_training_jobs)
        if len(first) < needed or any(t.state != "failed" for t in first):
            return False
        self._stop_running(trials, TUNING_STOP)
        self._end("Failed", f"the first {needed} training jobs failed; the last: {first[-1].reason}")
        return True

    def _stop_running(self, trials: list[TuningTrialRow], reason: str) -> None:
        self.stopping = reason
        for t in trials:
            if t.state == "running":
                with contextlib.suppress(TailorError):  # already ended
                    self.jobs.stop(t.training_job_name, reason=reason)

    # -- the end -------------------------------------------------------------------------------------
    def _pick_best(self, trials: list[TuningTrialRow]) -> None:
        best = best_trial(trials, self.maximize)
        name = best.training_job_name if best else None
        with self.db.session() as s:
            row = s.get(TuningJobRow, self.name)
            if row is not None and row.best_training_job != name:
                row.best_training_job = name
                row.last_modified_time = utcnow()

    def _finish(self, trials: list[TuningTrialRow]) -> None:
        best = best_trial(trials, self.maximize)
        if self.stopping == TUNING_STOP:
            self._end("Stopped", None)
        elif best is None:
            self._end("Failed", f"no training job completed with the objective metric {self.metric!r}")
        else:
            self._end("Completed", None)

    def _on_shutdown(self) -> None:
        if self.detach:  # the next server start resumes it (TuningService.recover)
            with self.db.session() as s:
                row = s.get(TuningJobRow, self.name)
                if row is not None:
                    row.owner_pid, row.owner_start_time = None, None
            return
        trials = self._trials()
        self._stop_running(trials, TUNING_STOP)
        for t in trials:
            if t.state == "running":
                self._save(t.number, state="stopped", reason="Tailor shut down while the training job ran")
        self._end("Stopped", "Tailor shut down while the tuning job ran")

    def _end(self, status: str, reason: str | None) -> None:
        now = utcnow()
        with self.db.session() as s:
            row = s.get(TuningJobRow, self.name)
            if row is None:
                return
            row.status, row.end_time, row.last_modified_time = status, now, now
            if reason:
                row.failure_reason = reason[:1024]
        log.info("tuning job %s: %s%s", self.name, status, f" ({reason})" if reason else "")

    # -- rows ----------------------------------------------------------------------------------------
    def _row(self) -> TuningJobRow:
        with self.db.session() as s:
            row = s.get(TuningJobRow, self.name)
            assert row is not None
            return row

    def _trial(self, number: int) -> TuningTrialRow:
        with self.db.session() as s:
            q = select(TuningTrialRow).where(
                TuningTrialRow.tuning_job_name == self.name, TuningTrialRow.number == number
            )
            return s.scalars(q).one()

    def _save(self, number: int, **fields: Any) -> None:
        with self.db.session() as s:
            q = select(TuningTrialRow).where(
                TuningTrialRow.tuning_job_name == self.name, TuningTrialRow.number == number
            )
            t = s.scalars(q).one()
            for key, value in fields.items():
                setattr(t, key, value)
        self._touch()

    def _touch(self) -> None:
        with self.db.session() as s:
            row = s.get(TuningJobRow, self.name)
            if row is not None:
                row.last_modified_time = utcnow()


def _finished(t: TuningTrialRow) -> search.Finished:
    return search.Finished(
        params=dict(t.params),
        state=t.state,
        objective=t.objective,
        intermediate={int(k): float(v) for k, v in (t.intermediate or {}).items()},
    )


def _objective(spec: dict[str, Any]) -> tuple[str, bool] | None:
    config = spec.get("HyperParameterTuningJobConfig", {})
    obj = config.get("HyperParameterTuningJobObjective") or spec.get("TrainingJobDefinition", {}).get("TuningObjective")
    return (obj["MetricName"], obj["Type"] == "Maximize") if obj else None
