"""Taking over the training jobs of a dead server (several servers on one PostgreSQL database).

A serving member (``tailor.membership``) claims, once per heartbeat, every InProgress or Stopping job whose
owner is not a live member: ``SELECT … FOR UPDATE SKIP LOCKED`` then the owner column set to itself in the same
transaction, so two servers never claim one job. What it does with each:

- a job whose stop was asked for (or that was Stopping) ends Stopped: the user wanted it ended;
- any other job starts again from the beginning on the new owner ("Starting", with a message naming the dead
  server); with a CheckpointConfig it resumes from the checkpoints its first run uploaded, as a SageMaker spot
  job does after an interruption. Its metric points so far stay.

Processes the dead server left on this same machine (the local backend's children outlive a ``kill -9`` of
their server) are killed first, so two copies never train at once; on another machine they cannot be reached
from here, and their runner, finding the job owned by someone else at its next poll, ends them itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from tailor.db import Database
from tailor.jobs.store import TrainingJobRow
from tailor.membership import Membership


@dataclass(frozen=True)
class Orphan:
    name: str
    previous_owner: str | None
    previous_host: str | None
    status: str
    stop_requested: bool
    pid: int | None
    pgid: int | None
    process_start_time: float | None
    spec: dict[str, Any]


def claim_orphans(db: Database, membership: Membership) -> list[Orphan]:
    """Claim the running jobs of dead servers for ``membership``; what they were."""
    q = (
        select(TrainingJobRow)
        .where(
            TrainingJobRow.status.in_(("InProgress", "Stopping")),
            membership.orphaned(TrainingJobRow.owner_server),
        )
        .with_for_update(skip_locked=True)
    )
    claimed: list[Orphan] = []
    with db.session() as s:
        for row in s.scalars(q):
            claimed.append(
                Orphan(
                    name=row.name,
                    previous_owner=row.owner_server,
                    previous_host=None,
                    status=row.status,
                    stop_requested=row.stop_requested,
                    pid=row.pid,
                    pgid=row.pgid,
                    process_start_time=row.process_start_time,
                    spec=dict(row.spec),
                )
            )
            row.owner_server = membership.id
    return [Orphan(**{**o.__dict__, "previous_host": membership.host_of(o.previous_owner)}) for o in claimed]
