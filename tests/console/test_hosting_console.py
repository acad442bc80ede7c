"""The console's hosting pages in a real browser: models, endpoint configs, an endpoint with charts and try-it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailor import Client
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
    page = console.page
    console.go("/models")
    page.click("#models-body a:text('fmnist')")
    page.wait_for_selector("dd:has-text('s3://models/console/model.tar.gz')")
    console.go("/endpoint-configs")
    page.click("#endpoint-configs-body a:text('fmnist-cfg')")
    page.wait_for_selector("a[href='#/models/fmnist']")
    console.go("/endpoints")
    page.wait_for_selector("#endpoints-body tr[data-name='fmnist-ep'] .badge.InService")
    page.click("#endpoints-body a:text('fmnist-ep')")
    page.wait_for_selector("h1 .badge.InService")
    wait_for(lambda: int(page.get_attribute("#chart-invocations", "data-points") or 0) >= 1, timeout=20)
    assert int(page.get_attribute("#chart-latency", "data-points")) >= 1
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
    console.shot("endpoint")
