"""The console's hosting pages in a real browser: models, endpoint configs, an endpoint with charts, its runtime
log and try-it."""

from __future__ import annotations

import io
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from tailor import Client
from tailor.db import Database
from tailor.hosting.store import EndpointMetricDetailRow, EndpointMetricRow
from tailor.settings import Settings
from tailor.storage import Storage
from tests.console.conftest import Console
from tests.jobs.specs import wait_for
from tests.serving.artifacts import CLASS_NAMES, build_artifact, png_bytes

pytestmark = pytest.mark.slow  # a browser and a server


def test_endpoint_page_charts_and_try_it(settings: Settings, console: Console, tmp_path: Path) -> None:
    # A real ResNet-20 artifact (seeded random weights) built the way tests/serving builds one.
    tar = build_artifact(tmp_path / "model.tar.gz")
    Storage(settings).upload_file(tar, "s3://models/console/model.tar.gz")
    with Client(url=console.url) as client:
        client.create_model(ModelName="fmnist", PrimaryContainer={"ModelDataUrl": "s3://models/console/model.tar.gz"})
        variant = {"VariantName": "AllTraffic", "ModelName": "fmnist", "InitialInstanceCount": 1}
        client.create_endpoint_config(EndpointConfigName="fmnist-cfg", ProductionVariants=[variant])
        client.create_endpoint(EndpointName="fmnist-ep", EndpointConfigName="fmnist-cfg")
        assert client.wait_endpoint("fmnist-ep", timeout=120)["EndpointStatus"] == "InService"
        for seed in range(6):  # traffic for the invocation and latency charts
            client.invoke_endpoint("fmnist-ep", png_bytes(seed), content_type="image/png")
    # Two minutes of traffic a quarter of an hour ago, then none until now: the charts must not join them.
    earlier_traffic(settings, "fmnist-ep", minutes_ago=(15, 14))
    page = console.page
    console.go("/models")
    row = page.locator("#models-body tr[data-name='fmnist']")
    row.wait_for()
    assert row.locator(".shape").inner_text() == "28×28 grayscale"
    assert row.locator(".classes").inner_text().startswith(f"10: {CLASS_NAMES[0]}")
    assert row.locator(".size").inner_text().endswith(("kB", "MB"))
    assert row.locator(".endpoints").inner_text() == "fmnist-ep"
    assert row.locator(".job").inner_text() == "none"  # uploaded by hand, not made by a training job here
    page.click("#models-body a:text('fmnist')")
    page.wait_for_selector("dd:has-text('s3://models/console/model.tar.gz')")
    console.go("/endpoint-configs")
    page.click("#endpoint-configs-body a:text('fmnist-cfg')")
    page.wait_for_selector("a[href='#/models/fmnist']")
    console.go("/endpoints")
    page.wait_for_selector("#endpoints-body tr[data-name='fmnist-ep'] .badge.InService")
    page.click("#endpoints-body a:text('fmnist-ep')")
    page.wait_for_selector("h1 .badge.InService")
    # The runtime log, tailed live: the worker's start and its model load are there.
    page.wait_for_selector("#endpoint-log:has-text('endpoint InService')")
    assert re.search(r"worker \w+ ready in \d+\.\d\d s", page.inner_text("#endpoint-log"))
    wait_for(lambda: int(page.get_attribute("#chart-invocations", "data-points") or 0) >= 16, timeout=20)
    # Latency: two lines (the old minutes, now) with a gap between; invocations: the quiet minutes drawn as 0.
    assert page.locator("#chart-latency path.series").first.get_attribute("d").count("M") == 2
    assert page.locator("#chart-invocations path.series").get_attribute("d").count("M") == 1
    # Time ticks on whole, evenly spaced minutes.
    labels = page.locator("#chart-latency text.tick").all_text_contents()
    minutes = [int(h) * 60 + int(m) for h, m in (re.findall(r"(\d+):(\d+)", t)[0] for t in labels if ":" in t)]
    steps = {b - a for a, b in zip(minutes, minutes[1:], strict=False)}
    assert len(minutes) >= 3 and len(steps) == 1, labels
    step = steps.pop()
    assert step > 0 and all(t % step == 0 for t in minutes), labels
    image = tmp_path / "shirt.png"
    image.write_bytes(png_bytes(42))
    page.set_input_files("#tryit-file", str(image))
    page.wait_for_selector("#tryit-result .pred")
    preds = page.locator("#tryit-result .pred")
    assert preds.count() == 5
    top_label = preds.first.locator("span").first.inner_text()
    assert top_label in CLASS_NAMES
    # Probabilities shown in descending order, as the model computed them.
    shown = [float(p.locator(".num").inner_text().rstrip("%")) for p in preds.all()]
    assert shown == sorted(shown, reverse=True) and 0 < sum(shown) <= 100.5
    assert page.inner_text("#tryit-note") == "Matches the model's input (28×28 grayscale)."
    # A 500x400 colour photo: still answered, and the box says what the server did to it, drawn at 28x28 grey.
    photo = tmp_path / "photo.png"
    buf = io.BytesIO()
    Image.new("RGB", (500, 400), (200, 40, 40)).save(buf, format="PNG")
    photo.write_bytes(buf.getvalue())
    page.set_input_files("#tryit-file", str(photo))
    page.wait_for_selector("#tryit-note:has-text('resized')")
    note = page.inner_text("#tryit-note")
    assert "resized 500×400 → 28×28 (aspect ratio not kept)" in note and "colour → grayscale" in note, note
    drawn = page.get_attribute("#tryit-preview", "width"), page.get_attribute("#tryit-preview", "height")
    assert drawn == ("28", "28")
    page.wait_for_selector("#tryit-result .pred")
    console.shot("endpoint")


def earlier_traffic(settings: Settings, endpoint: str, minutes_ago: tuple[int, ...]) -> None:
    """Metric rows for past minutes, as the hosting service flushes them (10 invocations, ~2 ms each)."""
    db = Database(settings)
    now = time.time()
    with db.session() as s:
        for ago in minutes_ago:
            minute = datetime.fromtimestamp(now - now % 60 - 60 * ago, UTC)
            key = {"endpoint_name": endpoint, "variant_name": "AllTraffic", "minute": minute}
            s.add(
                EndpointMetricRow(
                    **key,
                    invocations=10,
                    errors_4xx=0,
                    errors_5xx=0,
                    model_latency_us=20_000.0,
                    overhead_latency_us=1_000.0,
                    max_model_latency_us=2_500.0,
                    instances=1,
                    cpu_percent=0.0,
                    memory_bytes=0.0,
                    samples=0,
                )
            )
            s.add(EndpointMetricDetailRow(**key, latency_histogram={"156": 10}, batches=10, batched_images=10))
