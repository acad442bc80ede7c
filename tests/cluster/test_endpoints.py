"""Endpoints on the Ray cluster: instances as named actors spread over hosts, reached over TCP with a token;
a host lost under load (503s only for a bounded window, the instance replaced); UpdateEndpoint under load."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

from tailor.backends.ray_instances import actor_name
from tailor.core import Tailor
from tailor.hosting.store import WorkerRow
from tailor.serving import wire
from tailor.settings import Settings
from tailor.storage import Storage
from tests.cluster.ray_nodes import RayCluster
from tests.serving.artifacts import build_artifact, png_bytes

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
MODEL_URL = "s3://models/fm/model.tar.gz"
BODY = png_bytes(0)


@pytest.fixture(scope="module")
def model_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_artifact(tmp_path_factory.mktemp("artifact") / "model.tar.gz")


@pytest.fixture
def cluster_settings(s3_settings: Settings, two_hosts: RayCluster, model_tar: Path, tmp_path: Path) -> Settings:
    # Half a host's CPU per instance: a variant's two instances spread over both hosts, and one host can take
    # a lost host's instance (or a new generation's) beside its own.
    types = tmp_path / "instance_types.toml"
    types.write_text('["ml.m5.large"]\ncpus = 0.5\nmemory_gib = 0\n')
    settings = s3_settings.model_copy(
        update={"backend": "ray", "ray_address": two_hosts.address, "instance_types_file": types}
    )
    storage = Storage(settings)
    storage.ensure_bucket("models")
    storage.upload_file(model_tar, MODEL_URL)
    return settings


@pytest.fixture
def tailor(cluster_settings: Settings) -> Iterator[Tailor]:
    with Tailor.open(cluster_settings) as t:
        try:
            yield t
        finally:
            for e in t.hosting.list_endpoints()["Endpoints"]:  # detached actors outlive the server: stop them
                t.hosting.delete_endpoint(e["EndpointName"])
                t.hosting.wait_endpoint(e["EndpointName"], timeout=60)


def deploy(t: Tailor, name: str, variants: list[tuple[str, int]], config: str | None = None) -> None:
    h = t.hosting
    if config is None:
        h.create_model(ModelName="fm", PrimaryContainer={"ModelDataUrl": MODEL_URL})
    h.create_endpoint_config(
        EndpointConfigName=config or f"{name}-config",
        ProductionVariants=[
            {
                "VariantName": v,
                "ModelName": "fm",
                "InitialInstanceCount": n,
                "InitialVariantWeight": 1.0,
                "InstanceType": "ml.m5.large",
            }
            for v, n in variants
        ],
    )
    if config is None:
        h.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")
        desc = h.wait_endpoint(name, timeout=90)
        assert desc["EndpointStatus"] == "InService", desc.get("FailureReason")


def ready_workers(t: Tailor, name: str) -> list[WorkerRow]:
    with t.db.session() as s:
        q = select(WorkerRow).where(WorkerRow.endpoint_name == name, WorkerRow.state == "ready")
        return list(s.scalars(q))


def hosts_of(workers: list[WorkerRow]) -> list[str]:
    """The test host (host-a / host-b) each instance's actor runs on, from Ray's own record of its node."""
    import ray

    nodes = [n for n in ray.nodes() if n["Alive"]]  # this process joined the cluster (Tailor.open)
    host_of_node = {n["NodeID"]: k for n in nodes for k in n["Resources"] if k.startswith("host-")}
    infos = ray.get([ray.get_actor(actor_name(w.id), namespace="tailor").info.remote() for w in workers])
    print(f"\ninstance actors' RSS: {[round(i['rss_bytes'] / 2**20) for i in infos]} MiB")
    return [host_of_node[i["node_id"]] for i in infos]


def invoke_status(t: Tailor, name: str) -> int:
    try:
        return t.hosting.invoke(name, BODY, "image/png").reply.status
    except Exception as err:  # noqa: BLE001 - the SDK raises the 503 as ServiceUnavailableError
        return getattr(err, "http_status", 599)


def test_two_instances_on_two_hosts_both_serve(tailor: Tailor, two_hosts: RayCluster) -> None:
    deploy(tailor, "spread", [("AllTraffic", 2)])
    workers = ready_workers(tailor, "spread")
    assert len(workers) == 2
    assert all(w.socket_path.startswith("tcp://") and "@127.0.0.1:" in w.socket_path for w in workers)
    assert sorted(hosts_of(workers)) == ["host-a", "host-b"]

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: invoke_status(tailor, "spread"), range(64)))
    assert statuses == [200] * 64
    served = [wire.stats(w.socket_path)["images"] for w in workers]
    assert all(n > 0 for n in served) and sum(served) == 64, served

    # The port is no open door: a connection without the instance's token gets no answer.
    tcp = wire.parse_tcp(workers[0].socket_path)
    assert tcp is not None
    assert wire.call(wire.tcp_address(tcp.host, tcp.port, "0" * 64), wire.OP_PING, 2.0) is None
    assert wire.ping(workers[0].socket_path)

    # Another server on the same database (as after a restart) finds the actors by name: nothing relaunched.
    with Tailor.open(tailor.settings) as again:
        assert again.hosting.supervise_once() == []
        assert again.hosting.invoke("spread", BODY, "image/png").reply.status == 200
    assert {(w.id, w.socket_path, w.restarts) for w in ready_workers(tailor, "spread")} == {
        (w.id, w.socket_path, 0) for w in workers
    }
    assert invoke_status(tailor, "spread") == 200  # closing that server left the instances serving


def test_host_lost_under_load_is_replaced(tailor: Tailor, two_hosts: RayCluster) -> None:
    deploy(tailor, "lost", [("AllTraffic", 2)])
    tailor.hosting.serve()  # the supervisor: replaces dead instances
    workers = ready_workers(tailor, "lost")
    hosts = hosts_of(workers)
    victim_host, victim = hosts[0], workers[0]

    results: list[tuple[float, int]] = []
    stop = threading.Event()

    def load() -> None:
        deadline = time.monotonic() + 50
        while not stop.is_set() and time.monotonic() < deadline and len(results) < 4000:
            results.append((time.monotonic(), invoke_status(tailor, "lost")))
            time.sleep(0.005)

    loader = threading.Thread(target=load)
    loader.start()
    time.sleep(1.0)
    killed_at = time.monotonic()
    two_hosts.nodes[victim_host].kill()

    deadline = time.monotonic() + 40
    while True:
        now = ready_workers(tailor, "lost")
        mine = [w for w in now if w.id == victim.id]
        if len(now) == 2 and mine and mine[0].restarts >= 1 and mine[0].socket_path != victim.socket_path:
            break
        assert time.monotonic() < deadline, "the lost instance was not replaced within 40 s"
        time.sleep(0.2)
    replaced_at = time.monotonic()
    time.sleep(1.0)
    stop.set()
    loader.join(60)

    assert hosts_of([mine[0]]) == [h for h in ("host-a", "host-b") if h != victim_host]
    errors = [ts for ts, status in results if status != 200]
    assert all(status in (200, 503) for _, status in results)
    assert all(killed_at <= ts <= replaced_at for ts in errors), "errors outside the loss window"
    after = [status for ts, status in results if ts > replaced_at]
    assert len(after) >= 10 and set(after) == {200}
    assert replaced_at - killed_at < 30
    print(f"\nhost lost: {len(errors)} errors of {len(results)}, replaced after {replaced_at - killed_at:.1f} s")


def test_update_under_load_fails_nothing(tailor: Tailor, two_hosts: RayCluster) -> None:
    deploy(tailor, "upd", [("Blue", 1)])
    old = ready_workers(tailor, "upd")
    deploy(tailor, "upd", [("Green", 1)], config="upd-config-2")

    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def load() -> None:
        deadline = time.monotonic() + 40
        while not stop.is_set() and time.monotonic() < deadline and len(results) < 4000:
            try:
                r = tailor.hosting.invoke("upd", BODY, "image/png")
                results.append((r.reply.status, r.variant))
            except Exception as err:  # noqa: BLE001 - any failure counts
                results.append((getattr(err, "http_status", 599), ""))

    loaders = [threading.Thread(target=load) for _ in range(4)]
    for th in loaders:
        th.start()
    time.sleep(0.5)
    tailor.hosting.update_endpoint(EndpointName="upd", EndpointConfigName="upd-config-2")
    desc = tailor.hosting.wait_endpoint("upd", timeout=60)
    time.sleep(0.5)
    stop.set()
    for th in loaders:
        th.join(60)

    assert desc["EndpointStatus"] == "InService" and desc["EndpointConfigName"] == "upd-config-2"
    assert [s for s, _ in results if s != 200] == []
    variants = [v for _, v in results]
    assert variants[0] == "Blue" and variants[-1] == "Green"
    tailor.hosting.endpoints.join(30)  # the old generation drains, then its actors stop
    import ray

    with pytest.raises(ValueError):  # the old generation's actor is stopped and its name released
        ray.get_actor(actor_name(old[0].id), namespace="tailor")
