"""Servers sharing one PostgreSQL database, in process: heartbeats and leases, one claimer per orphan, fenced
writes of a job taken over, and updates/deletes asked of a non-owner carried out by the owner."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from sqlalchemy import select, update

from tailor.core import Tailor
from tailor.db import Database
from tailor.hosting.store import EndpointRow
from tailor.jobs.state import HANDED_OVER, stop_requested, transition
from tailor.jobs.store import TrainingJobRow
from tailor.jobs.takeover import claim_orphans
from tailor.membership import Membership, ServerRow
from tailor.settings import Settings
from tests.jobs.specs import wait_for

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _job(name: str, owner: str | None) -> TrainingJobRow:
    return TrainingJobRow(
        name=name,
        arn=name,
        spec={},
        status="InProgress",
        secondary_status="Training",
        transitions=[{"Status": "Training", "StartTime": T0.isoformat(), "StatusMessage": ""}],
        final_metrics=[],
        creation_time=T0,
        last_modified_time=T0,
        job_dir="/x",
        owner_server=owner,
    )


def _pg(settings: Settings, pg_url: str, lease: float = 1.0) -> Settings:
    return settings.model_copy(update={"database_url": pg_url, "server_lease_seconds": lease})


def test_a_member_without_heartbeat_is_dead_after_the_lease_and_every_orphan_is_claimed_once(
    settings: Settings, pg_url: str
) -> None:
    pg = _pg(settings, pg_url)
    with Tailor.open(pg) as t:  # creates the schema; t is a live member that beats in the background
        assert t.membership is not None
        dead = Membership(pg, t.db).join()  # joins, never beats again
        with t.db.session() as s:
            s.add_all(_job(f"j{i}", dead.id) for i in range(40))
            s.add(_job("mine", t.membership.id))
        claimers = [Membership(pg, t.db).join().start() for _ in range(3)]
        assert claim_orphans(t.db, claimers[0]) == []  # within the lease: nobody's orphans
        time.sleep(pg.server_lease_seconds + 0.3)
        claimed: list[list[str]] = [[] for _ in claimers]

        def claim(i: int) -> None:
            for _ in range(5):
                claimed[i] += [o.name for o in claim_orphans(t.db, claimers[i])]

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        everything = sorted(n for c in claimed for n in c)
        assert everything == sorted(f"j{i}" for i in range(40))  # each exactly once, across racing claimers
        with t.db.session() as s:
            owners = dict(s.execute(select(TrainingJobRow.name, TrainingJobRow.owner_server)).all())
        assert owners["mine"] == t.membership.id  # a live member's job is never taken
        for i, names in enumerate(claimed):
            assert all(owners[n] == claimers[i].id for n in names)
        # Dead long ago: forgotten once it supervises nothing (its jobs were claimed); one that still owns an
        # unfinished job stays, so its host is known when its job is taken over.
        still_owning = Membership(pg, t.db).join()
        with t.db.session() as s:
            s.add(_job("unclaimed", still_owning.id))
            s.execute(
                update(ServerRow)
                .where(ServerRow.id.in_([dead.id, still_owning.id]))
                .values(heartbeat_at=datetime(2020, 1, 1, tzinfo=UTC))
            )
        t.membership.forget_dead()  # (the claimers' own loops may have done it already)
        for c in claimers:
            c.leave()
        with t.db.session() as s:  # members that leave take their rows with them
            ids = {r.id for r in s.scalars(select(ServerRow))}
        assert t.membership.id in ids and still_owning.id in ids and dead.id not in ids
        assert not ids & {c.id for c in claimers}


def test_writes_of_a_job_taken_over_are_fenced(settings: Settings, pg_url: str) -> None:
    db = Database(_pg(settings, pg_url)).create_all()
    try:
        with db.session() as s:
            s.add(_job("j", "new-owner"))
        transition(db, "j", "Completed", "done", status="Completed", owner="old-owner")
        assert stop_requested(db, "j", owner="old-owner") == HANDED_OVER
        assert stop_requested(db, "j", owner="new-owner") is None
        with db.session() as s:
            row = s.get(TrainingJobRow, "j")
            assert row is not None and row.status == "InProgress" and len(row.transitions) == 1
    finally:
        db.dispose()


def test_delete_asked_of_a_non_owner_is_carried_out_by_the_owner(settings: Settings, pg_url: str) -> None:
    pg = _pg(settings, pg_url, lease=30.0)
    with Tailor.open(pg) as owner, Tailor.open(pg.model_copy(update={"home": settings.home.parent / "b"})) as other:
        assert owner.membership is not None and other.membership is not None
        with owner.db.session() as s:
            s.add(
                EndpointRow(
                    name="ep",
                    arn="arn:ep",
                    config_name="c",
                    variants=[],
                    status="InService",
                    generation=1,
                    creation_time=T0,
                    last_modified_time=T0,
                    owner_server=owner.membership.id,
                )
            )
        other.hosting.delete_endpoint("ep")
        desc = other.hosting.describe_endpoint("ep")
        assert desc["EndpointStatus"] == "Deleting"
        with other.db.session() as s:
            assert s.get(EndpointRow, "ep").pending_op == "delete"  # type: ignore[union-attr]
        assert other.hosting.adopt_orphans() == []  # not the non-owner's to run
        owner.serve()  # the owner's membership loop takes the request within a heartbeat
        wait_for(lambda: owner.hosting.list_endpoints()["Endpoints"] == [], timeout=20)
