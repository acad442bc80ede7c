"""The console's training-job pages in a real browser against a real `tailor server`."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from tailor import Client
from tailor.auth.keys import KeyStore
from tailor.db import Database
from tailor.jobs.store import MetricPointRow, TrainingJobRow, utcnow
from tailor.settings import Settings
from tests.api.conftest import ServerProcess
from tests.console.conftest import Console, sign_in, token_for
from tests.jobs.specs import fake_spec, put_train_data, wait_for

pytestmark = pytest.mark.slow  # a browser and a server


def test_sign_in_shows_the_key_and_bad_tokens_are_refused(
    settings: Settings, server: ServerProcess, admin_credentials: object, new_page: Callable[[], object]
) -> None:
    page = new_page()
    sign_in(page, server.url, "tailor_not-a-real-token")
    page.wait_for_selector("#error:not([hidden])")
    assert "not valid" in page.inner_text("#error")
    assert page.is_visible("#signin")
    assert not page.is_visible("#nav") and not page.is_visible("#signout")  # nothing to navigate to yet
    sign_in(page, server.url, token_for(settings, admin_credentials.access_key_id))
    page.wait_for_selector("#jobs")
    assert admin_credentials.access_key_id in page.inner_text("#who")
    assert page.is_visible("#nav")
    # The token lives in sessionStorage: a reload stays signed in; signing out forgets (and revokes) it.
    page.reload()
    page.wait_for_selector("#jobs")
    page.click("#signout")
    page.wait_for_selector("#signin")
    assert page.evaluate("sessionStorage.getItem('tailor.token')") is None
    assert not page.is_visible("#nav")


def test_a_key_without_permission_sees_access_denied_plainly(
    settings: Settings, server: ServerProcess, admin_credentials: object, new_page: Callable[[], object]
) -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sagemaker:Describe*", "Resource": "*"}],
    }
    key = KeyStore(settings).create("viewer", policy)
    page = new_page()
    sign_in(page, server.url, token_for(settings, key.info.access_key_id))
    page.wait_for_selector("#error:not([hidden])")
    text = page.inner_text("#error")
    assert "Access denied" in text and "sagemaker:ListTrainingJobs" in text, text


def test_running_job_charts_gain_points_live_then_stop_from_its_page(settings: Settings, console: Console) -> None:
    put_train_data(settings)
    with Client(url=console.url) as client:
        # One epoch every 0.6 s for ~2 minutes: the page must see new points arrive, then stop it.
        client.create_training_job(fake_spec("live-job", epochs="200", sleep="0.6", lr="0.05"))
    page = console.page
    console.go("/jobs/live-job")
    page.wait_for_selector("#stop:not([hidden])")
    acc = "#chart-accuracy"
    first = wait_for(lambda: int(page.get_attribute(acc, "data-points") or 0) >= 4, timeout=20) and int(
        page.get_attribute(acc, "data-points")
    )
    wait_for(lambda: int(page.get_attribute(acc, "data-points")) > first + 2, timeout=20)
    assert "lr" in page.inner_text("#hyperparameters") and "0.05" in page.inner_text("#hyperparameters")
    assert "s3://data/train" in page.inner_text("#channels")
    assert "Training" in page.inner_text("#timeline")
    wait_for(lambda: "Epoch[3] Train-accuracy" in page.inner_text("#log"), timeout=10)
    wait_for(lambda: int(page.get_attribute("#chart-cpu", "data-points") or 0) >= 2, timeout=10)
    assert int(page.get_attribute("#chart-loss", "data-points")) >= 1
    console.shot("training-job")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#stop")
    page.wait_for_selector("h1 .badge.Stopped", timeout=20_000)
    assert page.is_hidden("#stop")


def test_failure_reason_is_shown_plainly(settings: Settings, console: Console) -> None:
    put_train_data(settings)
    with Client(url=console.url) as client:
        client.create_training_job(fake_spec("broken-job", fail="1", epochs="1")).wait(timeout=30)
    console.go("/jobs/broken-job")
    console.page.wait_for_selector("#failure .failure")
    assert "the fake algorithm was told to fail" in console.page.inner_text("#failure")
    assert console.page.is_visible("h1 .badge.Failed")


def _insert_jobs(settings: Settings, count: int) -> None:
    """``count`` finished job rows written straight to the metadata DB, as a busy team's history would be."""
    db = Database(settings)
    now = utcnow()
    with db.session() as s:
        for i in range(count):
            name = f"hist-{i:04d}"
            created = now - timedelta(minutes=count - i)
            status = ("Completed", "Failed", "Stopped")[i % 3]
            spec = fake_spec(name)
            s.add(
                TrainingJobRow(
                    name=name,
                    arn=f"arn:aws:sagemaker:us-east-1:000000000000:training-job/{name}",
                    spec=spec,
                    status=status,
                    secondary_status=status,
                    transitions=[],
                    final_metrics=[
                        {"MetricName": "validation:accuracy", "Value": 0.5 + i / 4000, "Timestamp": created.isoformat()}
                    ],
                    creation_time=created,
                    last_modified_time=created + timedelta(seconds=30),
                    training_start_time=created,
                    training_end_time=created + timedelta(seconds=30),
                    job_dir=str(settings.jobs_dir / name),
                )
            )
        s.flush()  # the job rows first: metric points reference them
        for i in range(count):
            s.add(MetricPointRow(job_name=f"hist-{i:04d}", timestamp=now, name="train:loss", value=1.0, epoch=0))
    db.dispose()


def test_jobs_list_pages_fast_with_1000_jobs_sorts_and_filters(settings: Settings, console: Console) -> None:
    _insert_jobs(settings, 1000)
    page = console.page
    started = time.monotonic()
    page.reload()  # the whole page: HTML, scripts, whoami, and the first page of 1,000 jobs
    page.wait_for_selector("#jobs-body tr[data-job='hist-0999']")
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"jobs page took {elapsed:.2f} s with 1,000 jobs"
    rows = page.locator("#jobs-body tr")
    assert rows.count() == 25
    assert "0.7498" in rows.first.inner_text()  # hist-0999's validation accuracy, newest first
    assert "Completed 334" in page.inner_text(".counts")
    page.click("#next")
    page.wait_for_selector("#jobs-body tr[data-job='hist-0974']")
    page.click("th[data-sort=Name]")  # Name, descending first
    page.wait_for_selector("#jobs-body tr:first-child[data-job='hist-0999']")
    page.click("th[data-sort=Name]")
    page.wait_for_selector("#jobs-body tr:first-child[data-job='hist-0000']")
    page.fill("#job-filter", "hist-012")
    page.wait_for_selector("#jobs-body tr:first-child[data-job='hist-0120']")
    assert page.locator("#jobs-body tr").count() == 10
    page.select_option("#job-status", "Failed")
    page.wait_for_function("document.querySelectorAll('#jobs-body tr').length === 3")
    assert {r.get_attribute("data-job") for r in page.locator("#jobs-body tr").all()} == {
        "hist-0121",
        "hist-0124",
        "hist-0127",
    }
    page.fill("#job-filter", "")
    page.select_option("#job-status", "")
    page.wait_for_selector("#jobs-body tr:nth-child(25)")
    console.shot("training-jobs")
