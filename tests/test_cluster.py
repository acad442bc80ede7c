"""Two real `tailor server` processes on one PostgreSQL database and one S3 store (moto), separate homes.

A job created on one is described and stopped from the other; an endpoint deployed on one is invoked through
the other; after a `kill -9` of the first, the second takes over its running job (restarts it, after ending
the training process the dead server left on this machine) and its endpoint (relaunches its instances)
within a bounded time.
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from sqlalchemy import select

from tailor.auth.keys import init_admin
from tailor.client import Client
from tailor.db import Database
from tailor.jobs.store import TrainingJobRow
from tailor.membership import ServerRow
from tailor.settings import Settings
from tailor.storage import Storage
from tests.api.conftest import ServerProcess, start_server, stop_server
from tests.jobs.specs import fake_spec, put_train_data, wait_for
from tests.serving.artifacts import png_bytes

LEASE_S = 2.0  # a dead server is noticed after 2 s here (15 s by default)
TAKEOVER_BOUND_S = 30.0


@pytest.fixture
def cluster(
    tmp_path: Path, pg_url: str, moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Settings, list[ServerProcess]]]:
    """Two servers: homes a/ and b/, one PostgreSQL database, one S3 store, one admin key and master key."""
    shared = {
        "TAILOR_DATABASE_URL": pg_url,
        "TAILOR_S3_ENDPOINT_URL": moto_server,
        "TAILOR_S3_ACCESS_KEY_ID": "testing",
        "TAILOR_S3_SECRET_ACCESS_KEY": "testing",
        "TAILOR_SERVER_LEASE_SECONDS": str(LEASE_S),
    }
    for k, v in shared.items():
        monkeypatch.setenv(k, v)
    homes = [tmp_path / "a", tmp_path / "b"]
    for h in homes:
        h.mkdir(mode=0o700)
    a = Settings(home=homes[0]).ensure_dirs()
    init_admin(a)  # the key lives in the database; its secret is sealed by a/auth/master.key ...
    (homes[1] / "auth").mkdir(mode=0o700)
    shutil.copy2(homes[0] / "auth" / "master.key", homes[1] / "auth" / "master.key")  # ... which both need
    servers: list[ServerProcess] = []
    try:
        with ThreadPoolExecutor(2) as pool:  # both boot at once
            started = [
                pool.submit(start_server, Settings(home=h), tmp_path / f"server-{i}.log", None, 120.0)
                for i, h in enumerate(homes)
            ]
            for f in started:
                servers.append(f.result())
        yield a, servers
    finally:
        for s in servers:
            stop_server(s)


def _owner(db: Database, job: str) -> str | None:
    with db.session() as s:
        row = s.get(TrainingJobRow, job)
        assert row is not None
        return row.owner_server


def _server_id(db: Database, server: ServerProcess) -> str:
    with db.session() as s:
        return s.scalars(select(ServerRow.id).where(ServerRow.pid == server.proc.pid)).one()


@pytest.mark.slow
def test_two_servers_share_jobs_and_endpoints_and_one_takes_over_when_the_other_dies(
    cluster: tuple[Settings, list[ServerProcess]], model_tar: Path
) -> None:
    settings, (a, b) = cluster
    storage = Storage(settings)
    for bucket in ("data", "models", "out"):
        storage.ensure_bucket(bucket)
    put_train_data(settings)
    model_uri = "s3://models/cluster-fm/model.tar.gz"
    storage.upload_file(model_tar, model_uri)
    db = Database(settings)
    ca, cb = Client(a.url, settings=settings), Client(b.url, settings=settings)
    try:
        # A job created on A: described on B, stopped from B (A's runner sees the flag and ends it).
        ca.create_training_job(fake_spec("short", epochs="400", sleep="0.1"))
        wait_for(lambda: cb.describe_training_job("short")["SecondaryStatus"] == "Training", timeout=30)
        assert _owner(db, "short") == _server_id(db, a)
        cb.stop_training_job("short")
        wait_for(lambda: cb.describe_training_job("short")["TrainingJobStatus"] == "Stopped", timeout=30)

        # An endpoint deployed on A (a model B has never unpacked) and invoked through B's router.
        ca.create_model(ModelName="fm", PrimaryContainer={"ModelDataUrl": model_uri})
        variant = {"VariantName": "AllTraffic", "ModelName": "fm", "InitialInstanceCount": 1}
        cb.create_endpoint_config(EndpointConfigName="fm-config", ProductionVariants=[variant])
        ca.create_endpoint(EndpointName="fm", EndpointConfigName="fm-config")
        wait_for(lambda: cb.describe_endpoint("fm")["EndpointStatus"] == "InService", timeout=90, poll=0.2)
        assert cb.invoke_endpoint("fm", png_bytes(0), "image/png")["InvokedProductionVariant"] == "AllTraffic"

        # A long job on A, then A dies without a word.
        ca.create_training_job(fake_spec("long", epochs="600", sleep="0.1"))
        wait_for(lambda: cb.describe_training_job("long")["SecondaryStatus"] == "Training", timeout=30)
        with db.session() as s:
            first_pid = s.get(TrainingJobRow, "long").pid  # type: ignore[union-attr]
        assert first_pid is not None and psutil.pid_exists(first_pid)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(10)
        killed = time.monotonic()

        b_id = _server_id(db, b)
        # Bounded: the lease (2 s) and one heartbeat pass, with room for a 2-core machine under full load.
        wait_for(lambda: _owner(db, "long") == b_id, timeout=TAKEOVER_BOUND_S, poll=0.1)
        print(f"take-over {time.monotonic() - killed:.1f} s after kill -9")
        desc = wait_for(
            lambda: (d := cb.describe_training_job("long"))["SecondaryStatus"] == "Training" and d, timeout=30
        )
        messages = [t["StatusMessage"] for t in desc["SecondaryStatusTransitions"]]
        assert any(m.startswith("Restarting on ") and "stopped answering" in m for m in messages), messages
        assert not _alive(first_pid), "the dead server's training process still runs beside the restarted one"

        # B relaunched the endpoint's instance under itself: invocations through B work again.
        wait_for(lambda: _invokes(cb), timeout=60, poll=0.2)
        assert cb.describe_endpoint("fm")["EndpointStatus"] == "InService"
        cb.stop_training_job("long")
        wait_for(lambda: cb.describe_training_job("long")["TrainingJobStatus"] == "Stopped", timeout=30)
    finally:
        ca.close()
        cb.close()
        db.dispose()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _invokes(client: Client) -> bool:
    try:
        return client.invoke_endpoint("fm", png_bytes(1), "image/png")["InvokedProductionVariant"] == "AllTraffic"
    except Exception:  # noqa: BLE001 - 503 while the instance restarts
        return False
