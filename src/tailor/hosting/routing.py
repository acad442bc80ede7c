"""The routing table the router asks for: an endpoint's variants, weights and ready instance addresses.

The router (``tailor.serving.router``) caches the answer briefly and is told to forget it on every routing
change. Any Tailor process can route to any endpoint: the addresses come from the database. An embedded
process that finds instances whose owning process exited relaunches them here, under the endpoint's lock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil
from sqlalchemy import select

from tailor.db import Database
from tailor.errors import ValidationError
from tailor.hosting.instances import EndpointLocks, Instances
from tailor.hosting.store import EndpointRow, WorkerRow
from tailor.resources import row_of
from tailor.serving.router import VariantRoute


@dataclass(eq=False)
class RouteTable:
    db: Database
    instances: Instances
    locks: EndpointLocks
    # On a shared database each endpoint's owner relaunches its instances (tailor.hosting.takeover); a pid of
    # another machine means nothing here, so the embedded relaunch below is off.
    shared: bool = False

    def resolve(self, name: str) -> tuple[VariantRoute, ...]:
        with self.db.session() as s:
            row = row_of(s, EndpointRow, name, "Endpoint")
            if row.status not in ("InService", "Updating"):
                raise ValidationError(f"Endpoint {name!r} is {row.status}, not InService: it cannot be invoked now")
            ws = list(
                s.scalars(
                    select(WorkerRow).where(WorkerRow.endpoint_name == name, WorkerRow.generation == row.generation)
                )
            )
        detached = self.instances.backend.detached_instances  # a cluster's instances outlive their owner
        shared = self.shared or detached
        orphaned = [] if shared else [w for w in ws if w.state == "ready" and not _owner_alive(w.owner_pid)]
        if orphaned and name not in self.instances.recovering:
            # An embedded process finds workers whose owner exited: relaunch them here, unless this process's
            # supervisor (or an update) holds the endpoint already; then callers get a quick 503 meanwhile.
            lock = self.locks(name)
            if lock.acquire(blocking=False):
                try:
                    self.instances.relaunch(name, orphaned, why="lost the Tailor process that ran it")
                finally:
                    lock.release()
                return self.resolve(name)
        return tuple(
            VariantRoute(
                v["VariantName"],
                float(v["InitialVariantWeight"]),
                tuple(w.socket_path for w in ws if w.variant_name == v["VariantName"] and w.state == "ready"),
            )
            for v in row.variants
        )


def _owner_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    return pid == os.getpid() or psutil.pid_exists(pid)
