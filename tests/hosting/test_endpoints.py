"""Endpoints end to end in-process: worker processes, /ping-gated InService, routing, update under load,
crash restart, restart of Tailor, metrics and delete."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tailor.core import Tailor
from tailor.errors import NotFoundError, ServiceUnavailableError, ValidationError
from tailor.hosting.store import WorkerRow
from tailor.serving.loader import load_model
from tailor.serving.preprocess import decode_image
from tailor.settings import Settings
from tests.serving.artifacts import png_bytes

pytestmark = pytest.mark.slow  # model-worker processes


def deploy(t: Tailor, model_tar: Path, name: str, variants: list[tuple[str, int, float]]) -> dict:
    h = t.hosting
    h.create_model(ModelName=f"{name}-model", PrimaryContainer={"ModelDataUrl": str(model_tar)})
    h.create_endpoint_config(
        EndpointConfigName=f"{name}-config",
        ProductionVariants=[
            {"VariantName": v, "ModelName": f"{name}-model", "InitialInstanceCount": n, "InitialVariantWeight": w}
            for v, n, w in variants
        ],
    )
    h.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")
    assert h.describe_endpoint(name)["EndpointStatus"] in ("Creating", "InService")
    return h.wait_endpoint(name, timeout=120)


def workers(t: Tailor, name: str) -> list[WorkerRow]:
    from sqlalchemy import select

    with t.db.session() as s:
        return list(s.scalars(select(WorkerRow).where(WorkerRow.endpoint_name == name)))


def test_lifecycle_update_under_load_metrics_and_delete(settings: Settings, model_tar: Path) -> None:
    with Tailor.open(settings) as t:
        h = t.hosting
        desc = deploy(t, model_tar, "fm", [("AllTraffic", 2, 1.0)])
        assert desc["EndpointStatus"] == "InService", desc.get("FailureReason")
        pv = desc["ProductionVariants"][0]
        assert (pv["VariantName"], pv["CurrentInstanceCount"], pv["DesiredInstanceCount"]) == ("AllTraffic", 2, 2)
        assert pv["CurrentWeight"] == 1.0 and desc["EndpointConfigName"] == "fm-config"

        # Predictions through the endpoint equal the offline load_model() ones.
        bodies = [png_bytes(i) for i in range(8)]
        offline = load_model(h.model_dir("fm-model")).predict(np.stack([decode_image(b, (1, 28, 28)) for b in bodies]))
        for body, want in zip(bodies, offline, strict=True):
            r = h.invoke("fm", body, "image/png")
            assert r.variant == "AllTraffic" and r.reply.status == 200
            assert np.allclose(json.loads(r.reply.body), want, atol=1e-6)
        bad = h.invoke("fm", b"not an image", "image/png")
        assert bad.reply.status == 400

        # UpdateEndpoint while a bounded loop of requests runs: none fails, and traffic moves to the new variants.
        h.create_endpoint_config(
            EndpointConfigName="fm-config-2",
            ProductionVariants=[
                {"VariantName": "Blue", "ModelName": "fm-model", "InitialInstanceCount": 1, "InitialVariantWeight": 1},
                {"VariantName": "Green", "ModelName": "fm-model", "InitialInstanceCount": 1, "InitialVariantWeight": 1},
            ],
        )
        seen: Counter[tuple[str, int]] = Counter()
        stop = threading.Event()

        def load() -> None:
            for _ in range(5000):
                if stop.is_set():
                    return
                try:
                    r = h.invoke("fm", bodies[0], "image/png")
                    seen[(r.variant, r.reply.status)] += 1
                except Exception as exc:  # a failed request is what this test hunts for
                    seen[(type(exc).__name__, 0)] += 1

        thread = threading.Thread(target=load)
        thread.start()
        h.update_endpoint(EndpointName="fm", EndpointConfigName="fm-config-2")
        assert h.describe_endpoint("fm")["EndpointStatus"] == "Updating"
        done = h.wait_endpoint("fm", timeout=120)
        time.sleep(1.5)  # traffic on the new generation; old workers drained and stopped meanwhile
        stop.set()
        thread.join(30)
        assert done["EndpointStatus"] == "InService" and done["EndpointConfigName"] == "fm-config-2"
        assert {v["VariantName"] for v in done["ProductionVariants"]} == {"Blue", "Green"}
        assert all(status == 200 for (_, status) in seen), seen
        variants = {v for (v, _) in seen}
        assert "AllTraffic" in variants and {"Blue", "Green"} <= variants, seen
        # The old workers stop after their drain (in-flight requests finish first): within seconds, not at once.
        deadline = time.monotonic() + 15
        while {w.variant_name for w in workers(t, "fm")} != {"Blue", "Green"} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert {w.variant_name for w in workers(t, "fm")} == {"Blue", "Green"}  # old workers stopped

        # Metrics count what was sent (per variant).
        metrics = h.endpoint_metrics("fm")["Metrics"]
        by_variant = Counter()
        errors = Counter()
        for p in metrics:
            by_variant[p["VariantName"]] += p["Invocations"]
            errors[p["VariantName"]] += p["Invocation4XXErrors"]
        sent = Counter(v for (v, _) in seen.elements())
        assert by_variant["AllTraffic"] == sent["AllTraffic"] + 8 + 1
        assert by_variant["Blue"] == sent["Blue"] and by_variant["Green"] == sent["Green"]
        assert errors["AllTraffic"] == 1
        # A minute can hold only CPU/memory samples (the test may cross a minute boundary): no latency claimed there.
        assert all((p["ModelLatency"] > 0) if p["Invocations"] else p["ModelLatency"] is None for p in metrics)

        h.delete_endpoint("fm")
        assert h.describe_endpoint("fm")["EndpointStatus"] == "Deleting"
        assert h.wait_endpoint("fm", timeout=60) == {}
        with pytest.raises(NotFoundError):
            h.describe_endpoint("fm")
        assert workers(t, "fm") == []


def test_crashed_worker_gets_quick_503_then_is_restarted(settings: Settings, model_tar: Path) -> None:
    with Tailor.open(settings) as t:
        h = t.hosting
        assert deploy(t, model_tar, "crashy", [("A", 1, 1.0)])["EndpointStatus"] == "InService"
        (w,) = workers(t, "crashy")
        os.kill(w.pid, signal.SIGKILL)
        time.sleep(0.2)
        t0 = time.monotonic()
        with pytest.raises(ServiceUnavailableError):
            r = h.invoke("crashy", png_bytes(1), "image/png")
        assert time.monotonic() - t0 < 1.0  # quick, not a hang
        assert h.supervise_once() == [w.id]
        (w2,) = workers(t, "crashy")
        assert w2.pid != w.pid and w2.restarts == 1 and w2.state == "ready"
        r = h.invoke("crashy", png_bytes(1), "image/png")
        assert r.reply.status == 200
        h.sample_workers()
        points = h.endpoint_metrics("crashy")["Metrics"]  # one per minute: the test may straddle two
        assert sum(p["Invocations"] for p in points) == 2
        assert sum(p["Invocation5XXErrors"] for p in points) == 1  # the request during the crash
        sampled = [p for p in points if p["CPUUtilization"] is not None]
        assert sampled and sampled[-1]["CPUUtilization"] >= 0 and 0 < sampled[-1]["MemoryUtilization"] < 100
        assert sum(p["InvocationsPerInstance"] for p in points) == 2


def test_endpoint_survives_a_restart_and_bad_model_fails(settings: Settings, model_tar: Path) -> None:
    with Tailor.open(settings) as t:
        assert deploy(t, model_tar, "keep", [("A", 1, 1.0)])["EndpointStatus"] == "InService"
        old_pid = workers(t, "keep")[0].pid
        # A model whose files vanished: its endpoint ends Failed with the worker's reason.
        t.hosting.create_model(ModelName="broken", PrimaryContainer={"ModelDataUrl": str(model_tar)})
        for f in t.hosting.model_dir("broken").iterdir():
            f.unlink()
        t.hosting.create_endpoint_config(
            EndpointConfigName="broken", ProductionVariants=[{"VariantName": "A", "ModelName": "broken"}]
        )
        t.hosting.create_endpoint(EndpointName="broken", EndpointConfigName="broken")
        failed = t.hosting.wait_endpoint("broken", timeout=60)
        assert failed["EndpointStatus"] == "Failed" and "model" in failed["FailureReason"].lower()
        with pytest.raises(ValidationError, match="Failed"):
            t.hosting.invoke("broken", png_bytes(1), "image/png")
    # Tailor closed: its workers stopped. A new Tailor server relaunches InService endpoints' workers.
    with Tailor.open(settings) as t:
        t.hosting.serve()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ws = workers(t, "keep")
            if ws and ws[0].pid != old_pid and ws[0].state == "ready":
                break
            time.sleep(0.1)
        assert t.hosting.invoke("keep", png_bytes(2), "image/png").reply.status == 200
        assert t.hosting.describe_endpoint("keep")["EndpointStatus"] == "InService"


def test_metrics_count_latency_percentiles_and_realised_batches(settings: Settings, model_tar: Path) -> None:
    import base64
    from concurrent.futures import ThreadPoolExecutor

    with Tailor.open(settings) as t:
        h = t.hosting
        assert deploy(t, model_tar, "mx", [("AllTraffic", 1, 1.0)])["EndpointStatus"] == "InService"
        bodies = [png_bytes(i) for i in range(8)]
        with ThreadPoolExecutor(8) as pool:  # concurrent, so the worker forms batches of more than one
            statuses = list(pool.map(lambda i: h.invoke("mx", bodies[i % 8], "image/png").reply.status, range(24)))
        lines = "".join(json.dumps({"b64": base64.b64encode(b).decode()}) + "\n" for b in bodies[:3])
        assert h.invoke("mx", lines.encode(), "application/jsonlines").reply.status == 200
        assert statuses == [200] * 24

        points = h.endpoint_metrics("mx")["Metrics"]
        assert sum(p["Invocations"] for p in points) == 25
        assert sum(p["BatchedImages"] for p in points) == 24 + 3  # the worker's own count of images it ran
        batches = sum(p["Batches"] for p in points)
        assert 1 <= batches <= 25
        for p in points:
            if p["Invocations"]:
                assert 0 < p["ModelLatencyP50"] <= p["ModelLatencyP99"] <= p["MaxModelLatency"] * 1.025
            if p["Batches"]:
                assert p["BatchSize"] == p["BatchedImages"] / p["Batches"] >= 1.0


def test_max_image_pixels_setting_reaches_the_workers(settings: Settings, model_tar: Path) -> None:
    """TAILOR_MAX_IMAGE_PIXELS is the workers' limit: here just under one 28x28 image, so it is refused (413,
    from its header) while a 20x20 one is served."""
    with Tailor.open(settings.model_copy(update={"max_image_pixels": 28 * 28 - 1})) as t:
        assert deploy(t, model_tar, "px", [("AllTraffic", 1, 1.0)])["EndpointStatus"] == "InService"
        refused = t.hosting.invoke("px", png_bytes(1), "image/png").reply
        assert refused.status == 413 and "783 pixels" in json.loads(refused.body)["message"]
        assert t.hosting.invoke("px", png_bytes(2, size=(20, 20)), "image/png").reply.status == 200
