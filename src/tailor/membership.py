"""Several Tailor servers on one PostgreSQL database: who is alive, and who supervises what.

Each Tailor process that opens a PostgreSQL database joins as a member: one row in ``servers`` with a random
id, its host, pid and URL, and a heartbeat it renews every ``lease / 5`` seconds. A training job or an
endpoint names its supervising member in ``owner_server``; exactly one member owns each at a time because
ownership only ever changes through a row lock (``SELECT … FOR UPDATE SKIP LOCKED``) or a conditional UPDATE.
A member whose heartbeat is older than the lease (``server_lease_seconds``, 15 s by default) is dead: any
serving member claims its resources (and those of a member that left cleanly, which clears its ownership) and
adopts them — the job service restarts jobs, the hosting service relaunches endpoint instances.

Heartbeats and the lease are compared on the database's clock, so members on machines whose clocks disagree
still agree on who is dead. SQLite (one server per home, guarded by the home's server lock) has no members:
every function here is used only when ``clustered(db)``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Float, Integer, String, delete, func, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from tailor.db import Base, Database, UTCDateTime, utcnow
from tailor.settings import Settings

log = logging.getLogger("tailor.membership")
BEATS_PER_LEASE = 5  # a member renews its heartbeat 5 times per lease: 4 missed beats are still tolerated


class ServerRow(Base):
    """One Tailor process serving (or using in-process) the shared database."""

    __tablename__ = "servers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    url: Mapped[str | None] = mapped_column(String(255), default=None)  # None: an in-process client
    home: Mapped[str] = mapped_column(String(1024))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    lease_seconds: Mapped[float] = mapped_column(Float)


def clustered(db: Database) -> bool:
    """True when several servers may share this database (anything but SQLite)."""
    return db.engine.dialect.name != "sqlite"


def db_now(db: Database) -> Any:
    """Now, on the database's clock, as naive UTC (how ``UTCDateTime`` stores times)."""
    if db.engine.dialect.name == "postgresql":
        return func.timezone("UTC", func.now())
    return utcnow()


class Membership:
    """This process's membership: join, heartbeat, leave, and the "owned by a dead member" condition."""

    def __init__(self, settings: Settings, db: Database, url: str | None = None) -> None:
        self.settings = settings
        self.db = db
        self.id = uuid.uuid4().hex
        self.host = socket.gethostname()
        self.url = url
        self.lease = settings.server_lease_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tasks: list[Callable[[], object]] = []

    # -- join, beat, leave ------------------------------------------------------------------------------
    def join(self) -> Membership:
        with self.db.session() as s:
            now = s.scalar(select(db_now(self.db))) if clustered(self.db) else utcnow()
            s.add(
                ServerRow(
                    id=self.id,
                    host=self.host,
                    pid=os.getpid(),
                    url=self.url,
                    home=str(self.settings.home),
                    started_at=now,
                    heartbeat_at=now,
                    lease_seconds=self.lease,
                )
            )
        return self

    def beat(self) -> None:
        """Renew the heartbeat; a member declared dead meanwhile (its row removed) joins again: the resources
        taken from it stay with their new owners, and its job runners notice they lost them."""
        with self.db.session() as s:
            done = s.execute(update(ServerRow).where(ServerRow.id == self.id).values(heartbeat_at=db_now(self.db)))
        if done.rowcount == 0:  # type: ignore[attr-defined]
            self.join()

    def set_url(self, url: str) -> None:
        self.url = url
        with self.db.session() as s:
            s.execute(update(ServerRow).where(ServerRow.id == self.id).values(url=url))

    def leave(self) -> None:
        """Stop beating and remove this member's row, so the others adopt what it leaves at once."""
        self.stop()
        with self.db.session() as s:
            s.execute(delete(ServerRow).where(ServerRow.id == self.id))

    # -- the loop ---------------------------------------------------------------------------------------
    def start(self, tasks: list[Callable[[], object]] | None = None) -> Membership:
        """Beat in a background thread; after each beat run ``tasks`` (adoption passes of a serving member)."""
        self._tasks = list(tasks or [])
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tailor-membership", daemon=True)
            self._thread.start()
        return self

    def add_tasks(self, tasks: list[Callable[[], object]]) -> None:
        self._tasks.extend(tasks)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
                for task in list(self._tasks):
                    task()
                self.forget_dead()
            except Exception:  # a lost connection must not end the heartbeat: the next pass retries
                log.exception("membership pass failed")
            self._stop.wait(self.lease / BEATS_PER_LEASE)

    # -- who is alive -----------------------------------------------------------------------------------
    def live_ids(self) -> Any:
        """A subquery of the ids of members whose heartbeat is within the lease."""
        cutoff = db_now(self.db) - timedelta(seconds=self.lease)
        return select(ServerRow.id).where(ServerRow.heartbeat_at >= cutoff)

    def orphaned(self, owner: Any) -> ColumnElement[bool]:
        """The condition "``owner`` names no live member" (none, one that left, or one whose lease ran out)."""
        return or_(owner.is_(None), owner.not_in(self.live_ids()))

    def host_of(self, server_id: str | None) -> str | None:
        if server_id is None:
            return None
        with self.db.session() as s:
            return s.scalar(select(ServerRow.host).where(ServerRow.id == server_id))

    def forget_dead(self) -> int:
        """Drop members dead for 10 leases that supervise nothing any more: no unfinished job, no endpoint.
        (Finished jobs keep naming the server that ran them; that does not keep its row.)"""
        from_tables = [t for t in Base.metadata.sorted_tables if "owner_server" in t.c]
        cutoff = db_now(self.db) - timedelta(seconds=10 * self.lease)
        q = delete(ServerRow).where(ServerRow.heartbeat_at < cutoff)
        for t in from_tables:
            owned = select(t.c.owner_server).where(t.c.owner_server.is_not(None))
            if t.name == "training_jobs":
                owned = owned.where(t.c.status.in_(("InProgress", "Stopping")))
            q = q.where(ServerRow.id.not_in(owned))
        with self.db.session() as s:
            return s.execute(q).rowcount  # type: ignore[attr-defined]

    def members(self) -> list[dict[str, Any]]:
        """Every member with its age of heartbeat in seconds (for `tailor db current` and the docs' figures)."""
        with self.db.session() as s:
            now = s.scalar(select(db_now(self.db))) if clustered(self.db) else utcnow()
            rows = list(s.scalars(select(ServerRow).order_by(ServerRow.started_at)))
        out = []
        for r in rows:
            age = (now.replace(tzinfo=None) - r.heartbeat_at.replace(tzinfo=None)).total_seconds()
            out.append({"id": r.id, "host": r.host, "pid": r.pid, "url": r.url, "heartbeat_age_s": round(age, 1)})
        return out
