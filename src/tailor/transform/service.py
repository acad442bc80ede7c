"""TransformJobService: the one implementation of CreateTransformJob, Describe, List and Stop.

Every surface (SDK in-process, REST, the SageMaker JSON protocol, CLI, console) calls this. A job runs in the
process that created it, supervised by a thread (``tailor.transform.runner``) whose model workers are that
process's children; a server that dies takes its workers with it, and the next one marks the job Failed
("the server restarted while the job ran") instead of leaving it InProgress forever. Outputs already written
stay (each is whole).

Describe answers botocore's ``DescribeTransformJob`` shape plus one Tailor member boto3 ignores,
``TransformProgress``: records done / failed / total, input objects done / total, records per second, and the
summary (counts per predicted class; accuracy and confusion matrix when the inputs sit in class folders).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from tailor.backends import Backend, local
from tailor.db import Database, utcnow
from tailor.errors import ConflictError, NotFoundError, ValidationError
from tailor.resources import arn, fetch, list_request, paginate
from tailor.settings import Settings
from tailor.storage import Storage
from tailor.transform.inputs import list_inputs
from tailor.transform.runner import TransformRunner
from tailor.transform.spec import parse_transform_spec
from tailor.transform.store import TransformJobRow

STATUSES = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")
TERMINAL = ("Completed", "Failed", "Stopped")
RESTART_REASON = (
    "InternalFailure: the server restarted while the job ran; the .out files written before stay whole, "
    "create a new job for the rest"
)
# ModelName -> (unpacked model directory, class names): given by the container, so transform needs no hosting
ModelResolver = Callable[[str], tuple[Path, list[str]]]


class TransformJobService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        storage: Storage,
        resolve_model: ModelResolver,
        backend: Backend | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.storage = storage
        self.resolve_model = resolve_model
        self.backend = backend or local()
        self._running: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self._lock = threading.Lock()
        self._me = (os.getpid(), self.backend.start_time(os.getpid()))

    def start(self) -> TransformJobService:
        self.recover()
        return self

    def recover(self) -> list[str]:
        """Fail the jobs whose supervising process is gone (their workers went with it)."""
        with self.db.session() as s:
            rows = s.scalars(select(TransformJobRow).where(TransformJobRow.status.in_(("InProgress", "Stopping"))))
            candidates = [(r.name, r.owner_pid, r.owner_start_time) for r in rows]
        failed = []
        for name, owner, started in candidates:
            if name in self._running or (owner != self._me[0] and self.backend.same_process(owner, started)):
                continue
            with self.db.session() as s:
                row = s.get(TransformJobRow, name)
                if row is not None and row.status in ("InProgress", "Stopping"):
                    row.status = "Failed"
                    row.failure_reason = RESTART_REASON
                    row.end_time = row.last_modified_time = utcnow()
                    failed.append(name)
        return failed

    def close(self, timeout: float = 30.0) -> None:
        """Stop this process's jobs (they end Stopped, outputs whole) and wait for their threads."""
        with self._lock:
            running = list(self._running.values())
        for _, event in running:
            event.set()
        deadline = time.monotonic() + timeout
        for thread, _ in running:
            thread.join(max(0.0, deadline - time.monotonic()))

    def arn(self, name: str) -> str:
        return arn(self.settings.region, self.settings.account_id, "transform-job", name)

    # -- create --------------------------------------------------------------------------------------
    def create(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Validate (the request, the model, the inputs) before anything is written; then start the job."""
        spec = parse_transform_spec(raw)
        name = spec["TransformJobName"]
        try:
            model_dir, class_names = self.resolve_model(spec["ModelName"])
        except NotFoundError:
            raise ValidationError(
                f"Could not find model {spec['ModelName']!r}: create it first (CreateModel)"
            ) from None
        list_inputs(self.storage, spec)  # no inputs: refused now, not as a Failed job
        now = utcnow()
        row = TransformJobRow(
            name=name,
            arn=self.arn(name),
            spec=spec,
            status="InProgress",
            creation_time=now,
            last_modified_time=now,
            owner_pid=self._me[0],
            owner_start_time=self._me[1],
        )
        exists = ConflictError(f"Transform job {name!r} already exists: choose another TransformJobName")
        try:
            with self.db.session() as s:
                if s.get(TransformJobRow, name) is not None:
                    raise exists
                s.add(row)
        except IntegrityError:
            raise exists from None
        self._launch(spec, model_dir, class_names)
        return {"TransformJobArn": row.arn}

    def _launch(self, spec: dict[str, Any], model_dir: Path, class_names: list[str]) -> None:
        name = spec["TransformJobName"]
        event = threading.Event()
        runner = TransformRunner(
            settings=self.settings,
            db=self.db,
            storage=self.storage,
            backend=self.backend,
            spec=spec,
            model_dir=model_dir,
            class_names=class_names,
            stop_event=event,
            on_done=self._done,
        )
        thread = threading.Thread(target=runner.run, name=f"transform-{name}", daemon=True)
        with self._lock:
            self._running[name] = (thread, event)
        thread.start()

    def _done(self, name: str) -> None:
        with self._lock:
            self._running.pop(name, None)

    # -- read ----------------------------------------------------------------------------------------
    def describe(self, name: str) -> dict[str, Any]:
        return _describe(fetch(self.db, TransformJobRow, name, "Transform job"))

    def list(self, filters: dict[str, Any] | None = None, /, **kwargs: Any) -> dict[str, Any]:
        """ListTransformJobs; filters as a request dict (the SageMaker protocol) and/or keywords."""
        rows, token = paginate(self.db, TransformJobRow, list_request(filters, kwargs), statuses=STATUSES)
        out: dict[str, Any] = {"TransformJobSummaries": [_summary(r) for r in rows]}
        if token:
            out["NextToken"] = token
        return out

    def counts_by_status(self) -> dict[str, int]:
        with self.db.session() as s:
            found = dict(s.execute(select(TransformJobRow.status, func.count()).group_by(TransformJobRow.status)).all())
        return {status: int(found.get(status, 0)) for status in STATUSES}

    # -- stop, wait ----------------------------------------------------------------------------------
    def stop(self, name: str) -> dict[str, Any]:
        """StopTransformJob: Stopping now; the job ends Stopped once its in-flight invocations are dropped."""
        active = ("InProgress", "Stopping")
        with self.db.session() as s:
            # One conditional UPDATE: a job that ends meanwhile keeps its final status (no stale read rewrites it).
            changed = s.execute(
                update(TransformJobRow)
                .where(TransformJobRow.name == name, TransformJobRow.status.in_(active))
                .values(stop_requested=True, status="Stopping", last_modified_time=utcnow())
            ).rowcount
        if not changed:
            status = fetch(self.db, TransformJobRow, name, "Transform job").status
            raise ValidationError(f"Transform job {name!r} is {status}: only InProgress jobs can be stopped")
        with self._lock:
            mine = self._running.get(name)
        if mine:
            mine[1].set()
        return {}

    def wait(self, name: str, timeout: float | None = None, poll: float = 0.5) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            desc = self.describe(name)
            if desc["TransformJobStatus"] in TERMINAL or (deadline is not None and time.monotonic() >= deadline):
                return desc
            time.sleep(poll)


# -- shapes ----------------------------------------------------------------------------------------------


def _describe(row: TransformJobRow) -> dict[str, Any]:
    spec = row.spec
    out: dict[str, Any] = {
        "TransformJobName": row.name,
        "TransformJobArn": row.arn,
        "TransformJobStatus": row.status,
        "ModelName": spec["ModelName"],
        "MaxConcurrentTransforms": spec["MaxConcurrentTransforms"],
        "ModelClientConfig": spec["ModelClientConfig"],
        "MaxPayloadInMB": spec["MaxPayloadInMB"],
        "BatchStrategy": spec["BatchStrategy"],
        "TransformInput": spec["TransformInput"],
        "TransformOutput": spec["TransformOutput"],
        "TransformResources": spec["TransformResources"],
        "CreationTime": row.creation_time,
        "TransformProgress": progress(row),
    }
    if row.failure_reason:
        out["FailureReason"] = row.failure_reason
    if row.start_time:
        out["TransformStartTime"] = row.start_time
    if row.end_time:
        out["TransformEndTime"] = row.end_time
    return out


def progress(row: TransformJobRow) -> dict[str, Any]:
    """Tailor's extension: records done / failed / total, objects done / total, records per second, summary."""
    elapsed = None
    if row.start_time:
        elapsed = ((row.end_time or utcnow()) - row.start_time).total_seconds()
    handled = row.records_done + row.records_failed
    return {
        "RecordsTotal": row.records_total,
        "RecordsDone": row.records_done,
        "RecordsFailed": row.records_failed,
        "ObjectsTotal": row.files_total,
        "ObjectsDone": row.files_done,
        "RecordsPerSecond": round(handled / elapsed, 1) if elapsed and handled else 0.0,
        "Summary": row.summary or {},
    }


def _summary(row: TransformJobRow) -> dict[str, Any]:
    out: dict[str, Any] = {
        "TransformJobName": row.name,
        "TransformJobArn": row.arn,
        "CreationTime": row.creation_time,
        "LastModifiedTime": row.last_modified_time,
        "TransformJobStatus": row.status,
    }
    if row.end_time:
        out["TransformEndTime"] = row.end_time
    if row.failure_reason:
        out["FailureReason"] = row.failure_reason
    return out
