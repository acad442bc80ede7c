"""Endpoint instances: the model workers of every endpoint generation, started and stopped through a backend.

Each instance is a row in ``hosting_workers`` (its address, the backend's handle, its state) plus a process
the backend runs. A generation's instances start together and the endpoint turns InService only when every one
answers /ping; a crashed or orphaned instance is relaunched in place (same id and address, one more restart).
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from tailor.backends import Backend, Handle
from tailor.db import Database
from tailor.errors import NotFoundError, ServiceUnavailableError, TailorError
from tailor.hosting.metrics_store import MetricsStore
from tailor.hosting.models import Models
from tailor.hosting.store import WorkerRow
from tailor.settings import Settings


@dataclass(eq=False)
class Instances:
    settings: Settings
    db: Database
    backend: Backend
    models: Models
    metrics: MetricsStore
    options: dict[str, Any] = field(default_factory=dict)  # max_batch_size / max_delay_ms for new workers
    recovering: set[str] = field(default_factory=set, init=False)  # endpoints being relaunched now

    def log_path(self, endpoint: str, worker_id: str) -> Path:
        return self.settings.home / "endpoints" / endpoint / f"worker-{worker_id}.log"

    def start_generation(self, name: str, generation: int, variants: list[dict[str, Any]]) -> None:
        """Launch every instance of every variant, then wait until each answers /ping."""
        rows: list[WorkerRow] = []
        for v in variants:
            model_dir = str(self.models.directory(v["ModelName"]))
            for _ in range(v["InitialInstanceCount"]):
                wid = uuid.uuid4().hex[:16]
                rows.append(
                    WorkerRow(
                        id=wid,
                        endpoint_name=name,
                        generation=generation,
                        variant_name=v["VariantName"],
                        model_name=v["ModelName"],
                        model_dir=model_dir,
                        socket_path=self.backend.instance_address(wid),
                        state="starting",
                        owner_pid=None,
                    )
                )
        with self.db.session() as s:
            s.add_all(rows)
        for w in rows:
            self._spawn(w)
        errors = []
        for w in rows:
            try:
                self.backend.wait_ready(w.id, w.socket_path, self.log_path(name, w.id))
                self._mark(w.id, "ready")
            except TailorError as err:  # FailureReason is shown to callers: the model's name, not its directory
                reason = str(err).replace(f"{w.model_dir}/", f"model {w.model_name!r}: ")
                reason = reason.replace(w.model_dir, f"model {w.model_name!r}")
                reason = reason.replace(str(self.settings.home), "$TAILOR_HOME")
                errors.append(f"variant {w.variant_name}: {reason}")
        if errors:
            raise ServiceUnavailableError(errors[0])

    def _spawn(self, w: WorkerRow) -> None:
        log = self.log_path(w.endpoint_name, w.id)
        options = {"max_image_pixels": self.settings.max_image_pixels, **self.options}
        with contextlib.suppress(NotFoundError):  # a deleted model: its relaunched workers serve fp32
            options["quantize"] = self.models.quantize(w.model_name)
        handle = self.backend.start_instance(w.id, w.model_dir, w.socket_path, log, options)
        with self.db.session() as s:
            row = s.get(WorkerRow, w.id)
            if row is not None:
                row.pid, row.process_start_time, row.owner_pid = handle.pid, handle.started, os.getpid()

    def _mark(self, worker_id: str, state: str) -> None:
        with self.db.session() as s:
            row = s.get(WorkerRow, worker_id)
            if row is not None:
                row.state = state

    def of(self, name: str, generation: int | None = None) -> list[WorkerRow]:
        """The instances of an endpoint (of one generation, when given)."""
        with self.db.session() as s:
            q = select(WorkerRow).where(WorkerRow.endpoint_name == name)
            if generation is not None:
                q = q.where(WorkerRow.generation == generation)
            return list(s.scalars(q))

    def stop_generation(self, name: str, generation: int | None) -> None:
        """Stop an endpoint's instances (of one generation, or all) in parallel and forget them."""
        rows = self.of(name, generation)
        self.metrics.sample_batches([w for w in rows if w.owner_pid == os.getpid()])  # their last batches count too
        self._stop_all(rows)
        with self.db.session() as s:
            s.execute(delete(WorkerRow).where(WorkerRow.id.in_([w.id for w in rows])))
        for w in rows:
            Path(w.socket_path).unlink(missing_ok=True)

    def _stop_all(self, rows: list[WorkerRow]) -> None:
        threads = [threading.Thread(target=self.stop, args=(w,)) for w in rows]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def stop(self, w: WorkerRow) -> None:
        self.backend.stop_instance(w.id, Handle(w.pid, w.process_start_time))

    def alive(self, w: WorkerRow) -> bool:
        return w.state == "ready" and self.backend.instance_alive(w.id, Handle(w.pid, w.process_start_time))

    def relaunch(self, name: str, rows: list[WorkerRow]) -> None:
        """Stop what is left of these instances and start them again in place; each one restart more."""
        self.recovering.add(name)
        try:
            for w in rows:
                self.stop(w)
                self._mark(w.id, "starting")  # out of the routing table until it answers /ping again
                self._spawn(w)
            for w in rows:
                try:
                    self.backend.wait_ready(w.id, w.socket_path, self.log_path(name, w.id))
                    self._mark(w.id, "ready")
                except TailorError:
                    self._mark(w.id, "failed")
                with self.db.session() as s:
                    row = s.get(WorkerRow, w.id)
                    if row is not None:
                        row.restarts += 1
        finally:
            self.recovering.discard(name)

    def stop_owned(self) -> None:
        """Stop every instance this process started (the next server relaunches InService endpoints')."""
        with self.db.session() as s:
            mine = list(s.scalars(select(WorkerRow).where(WorkerRow.owner_pid == os.getpid())))
        for w in mine:
            self.stop(w)


class EndpointLocks:
    """One lock per endpoint: a create, update, delete or relaunch holds it while it changes the instances."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(name, threading.Lock())
