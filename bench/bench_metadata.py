"""Metadata load: the time of each query a Tailor server repeats, on PostgreSQL (and SQLite beside it).

Times one heartbeat, one take-over pass (the claim queries over 1,000 endpoints and 1,000 jobs, none orphaned:
the steady state), one supervisor pass's endpoint query, one job status transition, one metric point and
one resource sample insert, one stop-flag poll and one endpoint-minute metrics flush. docs/CLUSTER.md turns
these into the load of 100 servers and 1,000 endpoints.

    python -m bench metadata [--n 300] [--url postgresql://…]   # without --url: a throwaway local cluster
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROWS = 1_000  # endpoints and jobs in the tables while the queries run


def _time(fn: Callable[[], object], n: int) -> tuple[float, float, float]:
    """Minimum, median and p99 of ``n`` calls, in ms (on a busy machine the minimum is the query's own cost,
    the median adds waiting for a core)."""
    fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    samples.sort()
    return samples[0], statistics.median(samples), samples[int(0.99 * (len(samples) - 1))]


def _fill(db: Any) -> None:
    from tailor.hosting.store import EndpointRow
    from tailor.jobs.store import TrainingJobRow

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with db.session() as s:
        for i in range(ROWS):
            s.add(
                EndpointRow(
                    name=f"ep-{i}",
                    arn="a",
                    config_name="c",
                    variants=[],
                    status="InService",
                    creation_time=t0,
                    last_modified_time=t0,
                    owner_server="live",
                )
            )
            s.add(
                TrainingJobRow(
                    name=f"job-{i}",
                    arn="a",
                    spec={},
                    status="InProgress" if i < 100 else "Completed",
                    secondary_status="Training",
                    transitions=[{"Status": "Training", "StartTime": t0.isoformat(), "StatusMessage": ""}],
                    final_metrics=[],
                    creation_time=t0 + timedelta(seconds=i),
                    last_modified_time=t0,
                    job_dir="/x",
                    owner_server="live",
                )
            )


def measure(url: str | None, home: Path, n: int) -> dict[str, tuple[float, float, float]]:
    from sqlalchemy import select, update

    from tailor import migrations
    from tailor.db import Database
    from tailor.hosting.metrics_store import MetricsStore
    from tailor.hosting.routing import RouteTable
    from tailor.hosting.store import EndpointRow
    from tailor.jobs.state import stop_requested, transition
    from tailor.jobs.store import MetricPointRow, ResourceSampleRow
    from tailor.jobs.takeover import claim_orphans
    from tailor.membership import Membership, ServerRow
    from tailor.serving.metrics import EndpointMetrics
    from tailor.settings import Settings

    settings = Settings(home=home, database_url=url)
    db = Database(settings)
    migrations.prepare(db)
    _fill(db)
    me = Membership(settings, db).join()
    with db.session() as s:  # the rows' owner is a live member, as in the steady state
        s.execute(update(ServerRow).where(ServerRow.id == me.id).values(id="live"))
    me.id = "live"
    metrics = MetricsStore(db, EndpointMetrics())
    now = time.time()

    def flush() -> None:
        for _ in range(10):
            metrics.metrics.record("ep-1", "v", 200, 1000.0, 10.0, now)
        metrics.flush()

    def supervisor_query() -> None:
        with db.session() as s:
            q = select(EndpointRow).where(
                EndpointRow.status.in_(("InService", "Updating")), EndpointRow.owner_server == "other"
            )
            list(s.scalars(q))

    def endpoint_claim() -> None:
        with db.session() as s:
            q = (
                select(EndpointRow)
                .where(EndpointRow.status.in_(("InService",)), me.orphaned(EndpointRow.owner_server))
                .with_for_update(skip_locked=True)
            )
            list(s.scalars(q))

    routes = RouteTable(db, None, None, shared=True)  # type: ignore[arg-type]  # reads only: relaunches nothing

    def metric_point() -> None:
        with db.session() as s:
            s.add(MetricPointRow(job_name="job-1", timestamp=datetime.now(UTC), name="train:loss", value=0.5))

    def resource_sample() -> None:
        with db.session() as s:
            s.add(ResourceSampleRow(job_name="job-1", timestamp=datetime.now(UTC), cpu_percent=99.0, rss_bytes=1 << 31))

    out = {
        "heartbeat (UPDATE servers)": _time(me.beat, n),
        "job take-over claim (1,000 jobs, 100 running)": _time(lambda: claim_orphans(db, me), n),
        "endpoint take-over claim (1,000 endpoints)": _time(endpoint_claim, n),
        "supervisor: own endpoints": _time(supervisor_query, n),
        "route resolve (endpoint + its workers)": _time(lambda: routes.resolve("ep-5"), n),
        "stop-flag poll (one job row)": _time(lambda: stop_requested(db, "job-2", owner="live"), n),
        "job status transition": _time(lambda: transition(db, "job-3", "Training", "epoch", owner="live"), n),
        "metric point insert": _time(metric_point, n),
        "resource sample insert": _time(resource_sample, n),
        "metrics flush (1 endpoint-minute)": _time(flush, n),
    }
    db.dispose()
    return out


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench metadata")
    parser.add_argument("--n", type=int, default=300, help="calls per query (default 300)")
    parser.add_argument("--url", help="a PostgreSQL URL (default: a throwaway local cluster)")
    args = parser.parse_args(argv)
    if args.url:
        cluster: Any = nullcontext(args.url)
    else:
        from tests.postgres import fresh_database, postgres_cluster

        cluster = postgres_cluster()
    with cluster as base, tempfile.TemporaryDirectory() as tmp:
        pg_url = args.url or fresh_database(base)
        pg = measure(pg_url, Path(tmp) / "pg", args.n)
        lite = measure(None, Path(tmp) / "sqlite", args.n)
    print(f"{'query, ms':46} {'PostgreSQL min / p50 / p99':>28} {'SQLite min / p50 / p99':>26}")
    for name, (p0, p50, p99) in pg.items():
        l0, l50, l99 = lite[name]
        print(f"{name:46} {p0:>8.2f} / {p50:>6.2f} / {p99:<8.2f} {l0:>8.2f} / {l50:>6.2f} / {l99:<8.2f}")
