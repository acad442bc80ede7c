"""Every table on every metadata database Tailor supports: SQLite in the home, and PostgreSQL (psycopg 3).

``store_settings`` runs each test twice; on PostgreSQL against a fresh database of a real server
(tests/postgres.py). What differs between the two is what these tests pin down: 64-bit sizes, byte-wise name
order, JSON and timezone round trips, auto-increment ids, cascades, and concurrent writers of one row.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from tailor.cli.main import cli
from tailor.core import Tailor
from tailor.db import Database
from tailor.errors import NotFoundError, ValidationError
from tailor.hosting.metrics_store import MetricsStore
from tailor.hosting.store import EndpointRow, ModelRow, WorkerRow
from tailor.jobs import transfer
from tailor.jobs.state import transition
from tailor.jobs.store import MetricPointRow, ResourceSampleRow, TrainingJobRow
from tailor.membership import ServerRow
from tailor.serving.metrics import EndpointMetrics
from tailor.settings import Settings
from tailor.storage import Storage
from tests.jobs.specs import fake_spec, put_train_data, wait_for

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _job(name: str, t: datetime = T0) -> TrainingJobRow:
    return TrainingJobRow(
        name=name,
        arn=f"arn:{name}",
        spec={"TrainingJobName": name, "HyperParameters": {"epochs": "3"}, "nested": [1, {"a": None}]},
        status="InProgress",
        secondary_status="Starting",
        transitions=[{"Status": "Starting", "StartTime": t.isoformat(), "StatusMessage": "é ✓"}],
        final_metrics=[],
        creation_time=t,
        last_modified_time=t,
        job_dir=f"/tmp/{name}",
    )


def test_a_job_runs_end_to_end_and_its_rows_read_back(store_settings: Settings) -> None:
    put_train_data(store_settings)
    with Tailor.open(store_settings) as t:
        t.jobs.create(fake_spec("job-1", epochs="2"))
        desc = t.jobs.wait("job-1", timeout=60)
        assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
        assert desc["CreationTime"].tzinfo is not None and desc["TrainingEndTime"] > desc["CreationTime"]
        assert [s["Status"] for s in desc["SecondaryStatusTransitions"]][-1] == "Completed"
        points = t.jobs.metrics("job-1", "train:accuracy")
        assert len(points) == 2 and all(p["Timestamp"].tzinfo is UTC for p in points)
        assert {m["MetricName"] for m in desc["FinalMetricDataList"]} >= {"train:accuracy", "train:loss"}
        assert t.jobs.counts_by_status()["Completed"] == 1


def test_types_that_sqlite_forgives(store_settings: Settings) -> None:
    db = Database(store_settings).create_all()
    try:
        with db.session() as s:
            s.add(_job("j"))
        big = 5 * 2**30  # a 5 GiB RSS: beyond a 32-bit INTEGER
        with db.session() as s:
            s.add(ResourceSampleRow(job_name="j", timestamp=T0, cpu_percent=1.0, rss_bytes=big, gpu_memory_bytes=big))
            s.add_all(MetricPointRow(job_name="j", timestamp=T0, name="m" * 255, value=float(i)) for i in range(3))
        reason = "x" * 10_000  # FailureReason and friends are TEXT: no length limit on either database
        transition(db, "j", "Failed", "Training job failed", status="Failed", failure_reason=reason)
        with db.session() as s:
            row = s.get(TrainingJobRow, "j")
            assert row is not None and row.failure_reason == reason and row.status == "Failed"
            assert row.spec["nested"] == [1, {"a": None}] and row.transitions[0]["StatusMessage"] == "é ✓"
            assert row.last_modified_time.tzinfo is UTC
            assert s.query(ResourceSampleRow).one().rss_bytes == big
            ids = [m.id for m in s.query(MetricPointRow).order_by(MetricPointRow.id)]
            assert len(ids) == 3 and ids == sorted(set(ids))
            s.delete(row)
        with db.session() as s:  # the series go with their job (ON DELETE CASCADE on both)
            assert s.query(MetricPointRow).count() == 0 and s.query(ResourceSampleRow).count() == 0
    finally:
        db.dispose()


def test_names_sort_byte_wise_on_every_database(store_settings: Settings) -> None:
    """PostgreSQL's locale collations fold case and skip hyphens; List* must order as SQLite does."""
    with Tailor.open(store_settings) as t:
        with t.db.session() as s:
            for i, name in enumerate(["b", "B", "a1", "a-1", "A-2"]):
                s.add(_job(name, T0 + timedelta(seconds=i)))
        listed = t.jobs.list(SortBy="Name", SortOrder="Ascending")["TrainingJobSummaries"]
        assert [j["TrainingJobName"] for j in listed] == ["A-2", "B", "a-1", "a1", "b"]
        assert [j["TrainingJobName"] for j in t.jobs.list(NameContains="A-")["TrainingJobSummaries"]] == [
            "A-2",
            "a-1",
        ]


def test_concurrent_metric_flushes_lose_no_invocation(store_settings: Settings) -> None:
    """Servers add to the same endpoint minute: inserts race, updates must add, none may be lost."""
    db = Database(store_settings).create_all()
    now = datetime.now(UTC).timestamp()
    stores = [MetricsStore(db, EndpointMetrics()) for _ in range(4)]
    try:

        def hammer(store: MetricsStore) -> None:
            for _ in range(5):
                for _ in range(10):
                    store.metrics.record("ep", "v", 200, 1000.0, 10.0, now)
                store.flush()

        threads = [threading.Thread(target=hammer, args=(st,)) for st in stores]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        with db.session() as s:
            s.add(
                EndpointRow(
                    name="ep",
                    arn="a",
                    config_name="c",
                    variants=[],
                    status="InService",
                    creation_time=T0,
                    last_modified_time=T0,
                )
            )
        points = stores[0].query("ep")["Metrics"]
        assert sum(p["Invocations"] for p in points) == 4 * 5 * 10
        assert sum(p["Batches"] for p in points) == 0 and points[0]["ModelLatency"] == pytest.approx(1000.0)
    finally:
        db.dispose()


def test_a_minute_of_samples_only_claims_no_latency(store_settings: Settings) -> None:
    """The supervisor samples workers every few seconds; a minute with samples but no request has no latency."""
    db = Database(store_settings).create_all()
    try:
        store = MetricsStore(db, EndpointMetrics())
        now = datetime.now(UTC).timestamp()
        store.metrics.sample("ep", "v", 50.0, 1e8, 1, now - 60)
        store.metrics.record("ep", "v", 200, 800.0, 20.0, now)
        store.flush()
        quiet, busy = store.query("ep")["Metrics"]
        assert quiet["Invocations"] == 0 and quiet["ModelLatency"] is None and quiet["OverheadLatency"] is None
        assert quiet["CPUUtilization"] == pytest.approx(50.0)
        assert busy["ModelLatency"] == pytest.approx(800.0) and busy["OverheadLatency"] == pytest.approx(20.0)
    finally:
        db.dispose()


def test_hosting_rows_round_trip(store_settings: Settings) -> None:
    db = Database(store_settings).create_all()
    try:
        with db.session() as s:
            s.add(
                ModelRow(name="m", arn="a", model_id="x" * 32, spec={"k": 1}, model_json={"c": ["é"]}, creation_time=T0)
            )
            s.add(
                WorkerRow(
                    id="w" * 32,
                    endpoint_name="ep",
                    generation=1,
                    variant_name="v",
                    model_name="m",
                    model_dir="/d",
                    socket_path="/s" * 99,
                    state="ready",
                    pid=2**22,
                    process_start_time=1.7e9,
                )
            )
        with db.session() as s:
            m = s.get(ModelRow, "m")
            w = s.get(WorkerRow, "w" * 32)
            assert m is not None and m.model_json == {"c": ["é"]} and m.creation_time == T0
            assert w is not None and w.restarts == 0 and w.process_start_time == 1.7e9
    finally:
        db.dispose()


def test_a_postgresql_url_without_its_driver_names_the_extra(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "psycopg", None)  # as if `tailor[cluster]` were not installed
    monkeypatch.setenv("TAILOR_DATABASE_URL", "postgresql://tailor@127.0.0.1:1/tailor")
    res = CliRunner().invoke(cli, ["jobs", "list"])
    assert isinstance(res.exception, ValidationError)
    assert str(res.exception) == (
        "database_url is PostgreSQL but its driver (psycopg 3) is not installed: pip install 'tailor[cluster]'"
    )


def test_a_log_on_another_machine_is_named_not_answered_empty(settings: Settings, pg_url: str) -> None:
    """A job run by a server on another host: its log is in that host's home, which this server cannot read."""
    with Tailor.open(settings.model_copy(update={"database_url": pg_url})) as t:
        now = datetime.now(UTC)
        with t.db.session() as s:
            s.add(
                ServerRow(
                    id="elsewhere",
                    host="host-elsewhere",
                    pid=1,
                    url="http://10.0.0.2:8023",
                    home="/srv/tailor",
                    started_at=now,
                    heartbeat_at=now,
                    lease_seconds=3600.0,  # alive: nobody takes its job over
                )
            )
            row = _job("remote-job")
            row.job_dir, row.owner_server = "/srv/tailor/jobs/remote-job", "elsewhere"
            s.add(row)
        where = r"on host host-elsewhere \(in /srv/tailor/jobs/remote-job/training.log\).*no copy in S3"
        with pytest.raises(NotFoundError, match=where):
            t.jobs.logs("remote-job")
        # a job of this machine whose log is not written yet (queued) reads as empty, as before
        with t.db.session() as s:
            s.get(TrainingJobRow, "remote-job").owner_server = t.jobs.membership.id
        assert t.jobs.logs("remote-job")["Text"] == ""


def test_servers_on_other_machines_read_a_job_log_from_its_copy_in_s3(
    s3_settings: Settings, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several servers on one PostgreSQL and one S3: the owner copies the job log to S3 as it grows and whole
    before the job ends, so a server on another host reads the same text, paged by the same offsets."""
    settings = s3_settings.model_copy(update={"database_url": pg_url})
    storage = Storage(settings)
    for bucket in ("data", "out"):
        storage.ensure_bucket(bucket)
    put_train_data(settings)
    monkeypatch.setattr(transfer, "LOG_SHIP_S", 0.3)  # 5 s by default
    with Tailor.open(settings) as t:
        # While it runs: the copy grows (epochs of 1 s each).
        t.jobs.create(fake_spec("shipped-live", epochs="3", sleep="1"))
        copy = "s3://out/jobs/shipped-live/logs/training.log"
        wait_for(lambda: storage.exists(copy) and b"Epoch[0]" in storage.read_bytes(copy), timeout=30)
        assert t.jobs.describe("shipped-live")["TrainingJobStatus"] == "InProgress"
        t.jobs.stop("shipped-live")
        assert t.jobs.wait("shipped-live", timeout=60)["TrainingJobStatus"] == "Stopped"
        assert storage.read_bytes(copy) == (settings.jobs_dir / "shipped-live" / "training.log").read_bytes()
        t.jobs.create(fake_spec("shipped-log", epochs="2"))
        assert t.jobs.wait("shipped-log", timeout=60)["TrainingJobStatus"] == "Completed"
        local = (settings.jobs_dir / "shipped-log" / "training.log").read_bytes()
        assert storage.read_bytes("s3://out/jobs/shipped-log/logs/training.log") == local
        assert b"completed; model at" in local  # the last line is in the copy: it was made before the end
        # Seen from another machine: the job dir is not here, its owner's host is another one.
        now = datetime.now(UTC)
        with t.db.session() as s:
            s.add(ServerRow(id="b", host="host-b", pid=1, url=None, home="/srv", started_at=now, heartbeat_at=now,
                            lease_seconds=3600.0))  # fmt: skip
            row = s.get(TrainingJobRow, "shipped-log")
            row.job_dir, row.owner_server = "/srv/jobs/shipped-log", "b"
        whole = t.jobs.logs("shipped-log")
        assert whole == {"Text": local.decode(), "NextOffset": len(local), "Complete": True}
        first = t.jobs.logs("shipped-log", limit=200)
        assert first["Text"].endswith("\n") and not first["Complete"] and 0 < first["NextOffset"] <= 200
        rest = t.jobs.logs("shipped-log", offset=first["NextOffset"])
        assert first["Text"] + rest["Text"] == local.decode() and rest["Complete"]
