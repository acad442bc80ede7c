"""The console's transform-job pages in a real browser: the list, one job's progress, status and summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailor import Client
from tailor.settings import Settings
from tailor.storage import Storage
from tests.console.conftest import Console
from tests.transform.conftest import put_images, request  # noqa: F401 - fixture

pytestmark = pytest.mark.slow  # a browser and a server


def test_transform_job_list_and_detail(settings: Settings, console: Console, model_tar: Path) -> None:  # noqa: F811
    Storage(settings).upload_file(model_tar, "s3://models/rn20.tar.gz")
    keys = put_images(settings, "imgs", per_class=8)
    with Client(url=console.url) as client:
        client.create_model(ModelName="rn20", PrimaryContainer={"ModelDataUrl": "s3://models/rn20.tar.gz"})
        client.create_transform_job(request("console-tj", "s3://data/imgs/", "s3://out/console"))
        desc = client.wait_transform_job("console-tj", timeout=90, poll=0.1)
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    summary = desc["TransformProgress"]["Summary"]
    page = console.page
    console.go("/transform-jobs")
    page.wait_for_selector("#transform-jobs-body tr[data-name='console-tj'] .badge.Completed")
    page.click("#transform-jobs-body a:text('console-tj')")
    page.wait_for_selector("h1 .badge.Completed")
    assert page.inner_text("h1").split() == ["console-tj", "Completed"]
    assert page.inner_text("#records") == f"{len(keys)} / {len(keys)} records"
    assert page.locator("#transform-progress").inner_text().count("s3://out/console") == 1
    counts = page.locator("#predicted-counts tbody tr").all_inner_texts()
    assert {tuple(r.split("\t")) for r in counts} == {(k, str(v)) for k, v in summary["PredictedCounts"].items()}
    assert f"({summary['Correct']} of {len(keys)} images labelled" in page.inner_text("#accuracy")
    assert page.locator("#confusion tbody tr").count() == len(summary["ConfusionClasses"])
    assert page.locator("#stop").count() == 0  # a finished job offers no Stop
    console.shot("transform-job")
