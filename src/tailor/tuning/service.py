"""TuningService: the one implementation of SageMaker's automatic model tuning operations.

CreateHyperParameterTuningJob, Describe, List, Stop and ListTrainingJobsForHyperParameterTuningJob, called by
every surface (SDK in-process, REST, the SageMaker protocol, the CLI). As training jobs, a tuning job is
orchestrated by a thread of the Tailor process that created it (``tailor.tuning.runner``); its trials are
ordinary training jobs, queued by the job service like any other.

A server adopts the tuning jobs whose process is gone (a clean shutdown or a crash of a server, or a crash of an
in-process client) and carries on launching (``serve``); an in-process SDK or CLI leaves them to it, and ends its
own tuning jobs Stopped when it closes, as it does its training jobs.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tailor.backends import Backend, local
from tailor.db import Database, utcnow
from tailor.errors import ConflictError, NotFoundError, ValidationError
from tailor.jobs.service import TrainingJobService
from tailor.jobs.store import TrainingJobRow
from tailor.resources import arn, fetch, list_controls, list_request, page_of, paginate
from tailor.settings import Settings
from tailor.tuning.shapes import describe, summary, trial_summary
from tailor.tuning.spec import TuningJobSpec, parse_tuning_spec, trial_request
from tailor.tuning.store import TuningJobRow, TuningTrialRow

STATUSES = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")
TERMINAL = ("Completed", "Failed", "Stopped")
TRIAL_SORT = ("Name", "CreationTime", "Status", "FinalObjectiveMetricValue")


class TuningService:
    def __init__(
        self, settings: Settings, db: Database, jobs: TrainingJobService, backend: Backend | None = None
    ) -> None:
        self.settings = settings
        self.db = db
        self.jobs = jobs
        self.backend = backend or local()
        self._running: dict[str, threading.Thread] = {}
        self._shutdown = threading.Event()
        self._lock = threading.Lock()
        self._me = (os.getpid(), self.backend.start_time(os.getpid()))
        self._serve = False

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self, *, serve: bool = False) -> TuningService:
        """``serve``: this is a server, which resumes the tuning jobs no live process orchestrates."""
        self._serve = serve
        self.recover()
        return self

    def recover(self) -> list[str]:
        with self.db.session() as s:
            rows = s.scalars(select(TuningJobRow).where(TuningJobRow.status.in_(("InProgress", "Stopping"))))
            orphans = [(r.name, r.owner_pid, r.owner_start_time, r.spec) for r in rows]
        found: list[str] = []
        for name, owner, owner_start, spec in orphans:
            if name in self._running:
                continue
            if owner is not None and owner != self._me[0] and self.backend.same_process(owner, owner_start):
                continue  # another live Tailor process orchestrates it
            if not self._serve:
                continue  # an in-process client leaves it to the next server, which resumes it
            found.append(name)
            self._adopt(name)
            self._launch(parse_tuning_spec(spec))
        return found

    def _adopt(self, name: str) -> None:
        with self.db.session() as s:
            row = s.get(TuningJobRow, name)
            if row is not None:
                row.owner_pid, row.owner_start_time = self._me
                row.last_modified_time = utcnow()

    def close(self, timeout: float = 30.0) -> None:
        """Stop orchestrating (before the job service stops the trials): a server leaves its tuning jobs to the
        next start, an in-process client ends them Stopped."""
        self._shutdown.set()
        with self._lock:
            threads = list(self._running.values())
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- create --------------------------------------------------------------------------------------
    def create(self, raw: dict[str, Any] | TuningJobSpec, *, authorize_own_code: Any = None) -> dict[str, Any]:
        spec = parse_tuning_spec(raw)
        self._check(spec, authorize_own_code)
        name = spec.HyperParameterTuningJobName
        now = utcnow()
        row = TuningJobRow(
            name=name,
            arn=self.arn(name),
            spec=spec.to_dict(),
            status="InProgress",
            creation_time=now,
            last_modified_time=now,
            owner_pid=self._me[0],
            owner_start_time=self._me[1],
            stop_requested=False,
        )
        taken = f"Tuning job {name!r} already exists: choose another HyperParameterTuningJobName"
        try:
            with self.db.session() as s:
                if s.get(TuningJobRow, name) is not None:
                    raise ConflictError(taken)
                s.add(row)
        except IntegrityError:
            raise ConflictError(taken) from None
        self._launch(spec)
        return self.describe(name)

    def _check(self, spec: TuningJobSpec, authorize_own_code: Any) -> None:
        """Everything a trial would be refused for, refused now: each trial request is checked as
        CreateTrainingJob checks it, at both ends of every range and with each categorical value."""
        assert spec.objective is not None
        probe = f"{spec.HyperParameterTuningJobName}-000-00000000"
        for tuned in _probes(spec):
            checked = self.jobs.validate(trial_request(spec, probe, tuned), authorize_own_code=authorize_own_code)
        metrics = {m["Name"] for m in checked.metric_definitions()}
        if spec.objective.MetricName not in metrics:
            raise ValidationError(
                f"objective metric {spec.objective.MetricName!r} is not among the training job's metrics "
                f"({', '.join(sorted(metrics)) or 'none'}): add a MetricDefinitions entry for it"
            )
        warm = spec.WarmStartConfig
        for parent in warm.ParentHyperParameterTuningJobs if warm else []:
            desc = self.describe(parent.HyperParameterTuningJobName)
            if desc["HyperParameterTuningJobStatus"] not in TERMINAL:
                raise ValidationError(
                    f"warm start parent {parent.HyperParameterTuningJobName!r} is "
                    f"{desc['HyperParameterTuningJobStatus']}: a parent must have ended"
                )

    def _launch(self, spec: TuningJobSpec) -> None:
        from tailor.tuning.runner import TuningRunner  # Optuna loads with the first tuning job, not with Tailor

        name = spec.HyperParameterTuningJobName
        job = TuningRunner(
            self.settings,
            self.db,
            self.jobs,
            spec,
            self.arn(name),
            shutdown=self._shutdown,
            on_done=self._done,
            detach=self._serve,
        )
        thread = threading.Thread(target=job.run, name=f"tuning-{name}", daemon=True)
        with self._lock:
            self._running[name] = thread
        thread.start()

    def _done(self, name: str) -> None:
        with self._lock:
            self._running.pop(name, None)

    def arn(self, name: str) -> str:
        return arn(self.settings.region, self.settings.account_id, "hyper-parameter-tuning-job", name)

    # -- read ----------------------------------------------------------------------------------------
    def _rows(self, name: str) -> tuple[TuningJobRow, list[TuningTrialRow], dict[str, TrainingJobRow]]:
        row = fetch(self.db, TuningJobRow, name, "Tuning job")
        with self.db.session() as s:
            q = select(TuningTrialRow).where(TuningTrialRow.tuning_job_name == name).order_by(TuningTrialRow.number)
            trials = list(s.scalars(q))
            names = [t.training_job_name for t in trials]
            jobs = {j.name: j for j in s.scalars(select(TrainingJobRow).where(TrainingJobRow.name.in_(names)))}
        return row, trials, jobs

    def describe(self, name: str) -> dict[str, Any]:
        row, trials, jobs = self._rows(name)
        parents = []
        warm = row.spec.get("WarmStartConfig")
        for parent in warm["ParentHyperParameterTuningJobs"] if warm else []:
            try:
                parents.append(self._rows(parent["HyperParameterTuningJobName"]))
            except NotFoundError:
                continue  # a parent deleted since: the overall best is over what remains
        return describe(row, trials, jobs, self.jobs.arn, parents)

    def list(self, filters: dict[str, Any] | None = None, /, **kwargs: Any) -> dict[str, Any]:
        """ListHyperParameterTuningJobs; filters as a request dict and/or keywords (SageMaker's names)."""
        request = list_request(filters, kwargs)
        rows, token = paginate(self.db, TuningJobRow, request, statuses=STATUSES)
        out: dict[str, Any] = {"HyperParameterTuningJobSummaries": [summary(r, *self._rows(r.name)[1:]) for r in rows]}
        if token:
            out["NextToken"] = token
        return out

    def list_training_jobs(self, name: str, filters: dict[str, Any] | None = None, /, **kwargs: Any) -> dict[str, Any]:
        """ListTrainingJobsForHyperParameterTuningJob: the trials as HyperParameterTrainingJobSummary, sorted by
        Name (default), CreationTime, Status or FinalObjectiveMetricValue (jobs without a value last)."""
        f = list_request(filters, kwargs)
        f.pop("HyperParameterTuningJobName", None)
        known = {"StatusEquals", "SortBy", "SortOrder", "MaxResults", "NextToken"}
        sort_by, order, limit, status = list_controls(f, known, TRIAL_SORT, STATUSES, ("Name", "Ascending"))
        row, trials, jobs = self._rows(name)
        items = [trial_summary(row, t, jobs.get(t.training_job_name), self.jobs.arn) for t in trials]
        if status:
            items = [i for i in items if i["TrainingJobStatus"] == status]
        page, token = page_of(_sorted(items, sort_by, order == "Descending"), f.get("NextToken"), limit)
        return {"TrainingJobSummaries": page, **({"NextToken": token} if token else {})}

    # -- stop ----------------------------------------------------------------------------------------
    def stop(self, name: str) -> dict[str, Any]:
        """StopHyperParameterTuningJob: Stopping now; its running trials are stopped and it ends Stopped."""
        with self.db.session() as s:
            row = s.get(TuningJobRow, name)
            if row is None:
                raise NotFoundError(f"Tuning job {name!r} does not exist")
            if row.status not in ("InProgress", "Stopping"):
                raise ValidationError(
                    f"Tuning job {name!r} is {row.status}: only InProgress tuning jobs can be stopped"
                )
            row.stop_requested = True
            row.status = "Stopping"
            row.last_modified_time = utcnow()
            alive = row.owner_pid is not None and self.backend.same_process(row.owner_pid, row.owner_start_time)
            if name not in self._running and not alive:  # nobody orchestrates it: nothing of it runs either
                row.status, row.end_time = "Stopped", row.last_modified_time
        return self.describe(name)

    def wait(self, name: str, timeout: float | None = None, poll: float = 1.0) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            desc = self.describe(name)
            if desc["HyperParameterTuningJobStatus"] in TERMINAL:
                return desc
            if deadline is not None and time.monotonic() >= deadline:
                return desc
            time.sleep(poll)


def _probes(spec: TuningJobSpec) -> list[dict[str, str]]:
    """Tuned values that cover every range's ends and every categorical value, a few requests in all."""
    ranges = spec.ranges
    numeric = [*ranges.IntegerParameterRanges, *ranges.ContinuousParameterRanges]
    width = max([2, *(len(r.Values) for r in ranges.CategoricalParameterRanges)])
    out = []
    for i in range(width):
        tuned = {r.Name: (r.MinValue if i % 2 == 0 else r.MaxValue) for r in numeric}
        tuned |= {r.Name: r.Values[i % len(r.Values)] for r in ranges.CategoricalParameterRanges}
        out.append(tuned)
    return out


def _sorted(items: list[dict[str, Any]], key: str, descending: bool) -> list[dict[str, Any]]:
    if key == "FinalObjectiveMetricValue":
        with_value = [i for i in items if "FinalHyperParameterTuningJobObjectiveMetric" in i]
        without = [i for i in items if "FinalHyperParameterTuningJobObjectiveMetric" not in i]
        with_value.sort(key=lambda i: i["FinalHyperParameterTuningJobObjectiveMetric"]["Value"], reverse=descending)
        return with_value + without
    field = {"Name": "TrainingJobName", "CreationTime": "CreationTime", "Status": "TrainingJobStatus"}[key]
    return sorted(items, key=lambda i: (i[field], i["TrainingJobName"]), reverse=descending)
