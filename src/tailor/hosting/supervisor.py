"""The hosting supervisor (server mode): keeps every InService endpoint's instances running and measured.

Once a second it restarts instances that died (a crash, or the workers an earlier server owned), saying why in
the endpoint's runtime log, and copies what the workers printed into that log; every 5 s it samples each
worker's CPU, memory and batcher counters, and every 2 s it flushes the metrics to the database.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import select

from tailor.db import Database
from tailor.hosting.instances import EndpointLocks, Instances
from tailor.hosting.metrics_store import MetricsStore
from tailor.hosting.store import EndpointRow, WorkerRow
from tailor.serving.router import Router

SUPERVISE_EVERY_S = 1.0
FLUSH_EVERY_S = 2.0
SAMPLE_EVERY_S = 5.0
log = logging.getLogger("tailor.hosting")


@dataclass(eq=False)
class Supervisor:
    db: Database
    instances: Instances
    locks: EndpointLocks
    router: Router
    metrics: MetricsStore
    owner: str | None = None  # on a shared database, the server id: only its own endpoints are supervised here
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="tailor-hosting-supervisor", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        last_flush = last_sample = 0.0
        while not self._stop.is_set():
            try:
                self.supervise_once()
                now = time.monotonic()
                if now - last_sample >= SAMPLE_EVERY_S:
                    self.metrics.sample_workers()
                    self.metrics.sample_batches()
                    last_sample = now
                if now - last_flush >= FLUSH_EVERY_S:
                    self.metrics.flush()
                    last_flush = now
            except Exception:  # the supervisor must outlive one bad pass (a locked DB, a vanished process)
                log.exception("hosting supervisor pass failed")
            self._stop.wait(SUPERVISE_EVERY_S)

    def supervise_once(self) -> list[str]:
        """Restart dead workers of InService/Updating endpoints; returns the ids restarted."""
        with self.db.session() as s:
            q = select(EndpointRow).where(EndpointRow.status.in_(("InService", "Updating")))
            if self.owner is not None:
                q = q.where(EndpointRow.owner_server == self.owner)
            live = {r.name: r for r in s.scalars(q)}
            rows = [
                w
                for w in s.scalars(select(WorkerRow).where(WorkerRow.endpoint_name.in_(list(live))))
                if w.generation == live[w.endpoint_name].generation and w.state in ("ready", "failed")
            ]
        restarted = []
        for name in live:
            self.instances.collect_logs(name)
        for name in {w.endpoint_name for w in rows}:
            lock = self.locks(name)
            if not lock.acquire(blocking=False):
                continue  # an update or delete is running on it
            try:
                dead = [w for w in rows if w.endpoint_name == name and not self.instances.alive(w)]
                if dead:
                    self.router.invalidate(name)
                    crashed = [w for w in dead if w.owner_pid == os.getpid()]
                    if crashed:
                        self.instances.relaunch(name, crashed)
                    if orphans := [w for w in dead if w.owner_pid != os.getpid()]:
                        self.instances.relaunch(name, orphans, why="was run by an earlier Tailor server")
                    self.router.invalidate(name)
                    restarted += [w.id for w in dead]
            finally:
                lock.release()
        return restarted
