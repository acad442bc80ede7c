"""Endpoint instances: the model workers of every endpoint generation, started and stopped through a backend.

Each instance is a row in ``hosting_workers`` (its address, the backend's handle, its state) plus a process
the backend runs. A generation's instances start together and the endpoint turns InService only when every one
answers /ping; a crashed or orphaned instance is relaunched in place (same id and address, one more restart).
Each start (pid), readiness (seconds to /ping), stop and restart (with the reason) goes to the endpoint's
runtime log (``tailor.hosting.logs``), and so does what the worker printed, collected from its own file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from tailor.backends import Backend, Handle
from tailor.db import Database
from tailor.errors import NotFoundError, ServiceUnavailableError, TailorError
from tailor.hosting.logs import EndpointLogs
from tailor.hosting.metrics_store import MetricsStore
from tailor.hosting.models import Models
from tailor.hosting.store import EndpointRow, ModelRow, WorkerRow
from tailor.settings import Settings


@dataclass(eq=False)
class Instances:
    settings: Settings
    db: Database
    backend: Backend
    models: Models
    metrics: MetricsStore
    logs: EndpointLogs
    options: dict[str, Any] = field(default_factory=dict)  # max_batch_size / max_delay_ms for new workers
    recovering: set[str] = field(default_factory=set, init=False)  # endpoints being relaunched now

    def log_path(self, endpoint: str, worker_id: str) -> Path:
        return self.logs.worker_path(endpoint, worker_id)

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
        t0 = time.monotonic()
        by_variant = {v["VariantName"]: v for v in variants}
        for w in rows:
            self._spawn(w, by_variant[w.variant_name])
        errors = []
        for w in rows:
            try:
                self._wait_ready(w)
                self._ready_event(w, t0)
            except TailorError as err:  # FailureReason is shown to callers: the model's name, not its directory
                reason = str(err).replace(f"{w.model_dir}/", f"model {w.model_name!r}: ")
                reason = reason.replace(w.model_dir, f"model {w.model_name!r}")
                reason = reason.replace(str(self.settings.home), "$TAILOR_HOME")
                errors.append(f"variant {w.variant_name}: {reason}")
                self.logs.collect(name, [w.id])
                self.logs.event(name, f"worker {w.id} did not start: {reason}")
        if errors:
            raise ServiceUnavailableError(errors[0])

    def _spawn(self, w: WorkerRow, variant: dict[str, Any] | None = None) -> None:
        log = self.log_path(w.endpoint_name, w.id)
        options = {"max_image_pixels": self.settings.max_image_pixels, **self.options, **self._placement(w, variant)}
        with contextlib.suppress(NotFoundError):  # a deleted model: its relaunched workers serve fp32
            options["quantize"] = self.models.quantize(w.model_name)
        handle = self.backend.start_instance(w.id, w.model_dir, w.socket_path, log, options)
        self.logs.event(
            w.endpoint_name,
            f"worker {w.id} starting: variant {w.variant_name}, model {w.model_name}, generation {w.generation}, "
            f"pid {handle.pid}",
        )
        with self.db.session() as s:
            row = s.get(WorkerRow, w.id)
            if row is not None:
                row.pid, row.process_start_time, row.owner_pid = handle.pid, handle.started, os.getpid()

    def _ready_event(self, w: WorkerRow, t0: float) -> None:
        self.logs.collect(w.endpoint_name, [w.id])  # its own "model loaded in … s" line comes first
        self.logs.event(w.endpoint_name, f"worker {w.id} ready in {time.monotonic() - t0:.2f} s (start to /ping)")

    def exit_reason(self, w: WorkerRow) -> str:
        """Why a worker is gone, in words: its exit code or signal when the backend knows it."""
        code = getattr(self.backend, "exit_code", lambda _id: None)(w.id)
        if code is None:
            return "the process is gone"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-code).name}"
            return f"killed by signal {-code}"
        return f"exited with code {code}"

    def collect_logs(self, name: str) -> None:
        """Copy the workers' own output of an endpoint into its runtime log."""
        self.logs.collect(name, [w.id for w in self.of(name)])

    def _placement(self, w: WorkerRow, variant: dict[str, Any] | None) -> dict[str, Any]:
        """What a remote backend needs beyond the local model directory: where the model comes from (each node
        fetches ModelDataUrl itself) and the variant's InstanceType (the resources it asks the cluster for)."""
        with self.db.session() as s:
            model = s.get(ModelRow, w.model_name)
            if variant is None:
                endpoint = s.get(EndpointRow, w.endpoint_name)
                variant = (
                    next((v for v in endpoint.variants if v["VariantName"] == w.variant_name), None)
                    if endpoint
                    else None
                )
            url = model.spec["PrimaryContainer"]["ModelDataUrl"] if model is not None else None
        return {"model_data_url": url, "instance_type": (variant or {}).get("InstanceType")}

    def _wait_ready(self, w: WorkerRow) -> None:
        """Wait for /ping; store the address the backend reports (known only now on a cluster); mark it ready."""
        address = self.backend.wait_ready(w.id, w.socket_path, self.log_path(w.endpoint_name, w.id))
        with self.db.session() as s:
            row = s.get(WorkerRow, w.id)
            if row is not None:
                if address:
                    row.socket_path = w.socket_path = address
                row.state = "ready"

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
        self.logs.collect(name, [w.id for w in rows])
        for w in rows:
            if os.path.isabs(w.socket_path):  # a local worker's Unix socket
                Path(w.socket_path).unlink(missing_ok=True)
            self.logs.event(name, f"worker {w.id} stopped (variant {w.variant_name}, generation {w.generation})")
            self.logs.forget_worker(name, w.id)

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

    def relaunch(self, name: str, rows: list[WorkerRow], why: str = "crashed") -> None:
        """Stop what is left of these instances and start them again in place; each one restart more.
        ``why`` says in the endpoint log what happened ("crashed": the backend's exit reason is added)."""
        self.recovering.add(name)
        try:
            self.logs.collect(name, [w.id for w in rows])  # the dead worker's last words before the restart
            started = []
            for w in rows:
                reason = f"{why}: {self.exit_reason(w)}" if why == "crashed" else why
                self.logs.event(name, f"worker {w.id} {reason}; restarting it (restart {w.restarts + 1})")
                self.stop(w)
                self._mark(w.id, "starting")  # out of the routing table until it answers /ping again
                try:
                    self._spawn(w)
                    started.append(w)
                except TailorError as err:  # e.g. its model was deleted, its InstanceType no longer fits
                    self._mark(w.id, "failed")
                    self.logs.event(name, f"worker {w.id} failed to restart: {err}")
            t0 = time.monotonic()
            for w in started:
                try:
                    self._wait_ready(w)
                    self._ready_event(w, t0)
                except TailorError as err:
                    self._mark(w.id, "failed")
                    self.logs.collect(name, [w.id])
                    self.logs.event(name, f"worker {w.id} failed to restart: {err}")
                with self.db.session() as s:
                    row = s.get(WorkerRow, w.id)
                    if row is not None:
                        row.restarts += 1
        finally:
            self.recovering.discard(name)

    def stop_owned(self) -> None:
        """Stop every instance this process started (the next server relaunches InService endpoints'); detached
        instances (a cluster's actors) keep serving and the next server finds them again."""
        if self.backend.detached_instances:
            return
        with self.db.session() as s:
            mine = list(s.scalars(select(WorkerRow).where(WorkerRow.owner_pid == os.getpid())))
        for w in mine:
            self.stop(w)
        for name in {w.endpoint_name for w in mine}:
            self.logs.collect(name, [w.id for w in mine if w.endpoint_name == name])
        for w in mine:
            self.logs.event(w.endpoint_name, f"worker {w.id} stopped: the Tailor process that ran it is closing")


class EndpointLocks:
    """One lock per endpoint: a create, update, delete or relaunch holds it while it changes the instances."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(name, threading.Lock())
