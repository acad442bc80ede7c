"""The console's own routes over HTTP: public static shell, no external URLs, JSON routes behind the policy."""

from __future__ import annotations

import re

import httpx
import pytest

from tailor.settings import Settings
from tests.api.conftest import ServerProcess
from tests.console.conftest import token_for

pytestmark = pytest.mark.slow  # a server with trained jobs (15 s set-up)

STATIC = ("index.html", "console.css", "charts.js", "hosting.js", "console.js", "logo.svg")


def test_the_shell_and_assets_are_served_and_reference_nothing_outside(server: ServerProcess) -> None:
    r = httpx.get(f"{server.url}/console", follow_redirects=True)
    assert r.status_code == 200 and "Tailor console" in r.text
    for name in STATIC[1:]:
        asset = httpx.get(f"{server.url}/console/static/{name}")
        assert asset.status_code == 200, name
        # Offline: no CDN or any absolute URL the browser would fetch (the SVG namespace is not a fetch).
        urls = set(re.findall(r"https?://[^\s\"')]+", asset.text)) - {"http://www.w3.org/2000/svg"}
        assert not urls, (name, urls)
    assert httpx.get(f"{server.url}/console/static/..%2Froutes.py").status_code == 404
    assert httpx.get(f"{server.url}/console/static/nope.js").status_code == 404


def test_json_routes_need_a_token_and_a_policy(
    settings: Settings, server: ServerProcess, admin_credentials: object
) -> None:
    url = f"{server.url}/console/api/training-jobs"
    assert httpx.get(url).status_code == 403  # unsigned: MissingAuthenticationToken
    admin = {"Authorization": f"Bearer {token_for(settings, admin_credentials.access_key_id)}"}
    page = httpx.get(url, headers=admin).json()
    assert page["TrainingJobSummaries"] == [] and page["StatusCounts"]["InProgress"] == 0
    me = httpx.get(f"{server.url}/console/api/whoami", headers=admin).json()
    assert me["AccessKeyId"] == admin_credentials.access_key_id
    bad = httpx.get(url, headers=admin, params={"SortBy": "Nope"})
    assert bad.status_code == 400 and "SortBy" in bad.json()["error"]["message"]


def _job_rows(settings: Settings, finished: dict[str, float], running: dict[str, float]) -> None:
    """Job rows straight in the metadata DB: finished ones with final metrics, running ones with a metric point."""
    from tailor.db import Database
    from tailor.jobs.store import MetricPointRow, TrainingJobRow, utcnow
    from tests.jobs.specs import fake_spec

    db = Database(settings)
    now = utcnow()
    with db.session() as s:
        for name, acc in {**finished, **running}.items():
            status = "Completed" if name in finished else "InProgress"
            final = [{"MetricName": "validation:accuracy", "Value": acc, "Timestamp": now.isoformat()}]
            s.add(
                TrainingJobRow(
                    name=name,
                    arn=f"arn:aws:sagemaker:{settings.region}:{settings.account_id}:training-job/{name}",
                    spec=fake_spec(name),
                    status=status,
                    secondary_status=status,
                    transitions=[],
                    final_metrics=final if name in finished else [],
                    creation_time=now,
                    last_modified_time=now,
                    job_dir=str(settings.jobs_dir / name),
                )
            )
        s.flush()  # metric points reference the job rows
        for name, acc in running.items():
            s.add(MetricPointRow(job_name=name, timestamp=now, name="validation:accuracy", value=acc, epoch=0))
    db.dispose()


def _page(url: str, settings: Settings, name: str, policy: dict) -> dict[str, object]:
    from tailor.auth.keys import KeyStore

    key = KeyStore(settings).create(name, policy)
    auth = {"Authorization": f"Bearer {token_for(settings, key.info.access_key_id)}"}
    page = httpx.get(f"{url}/console/api/training-jobs", headers=auth)
    assert page.status_code == 200, page.text
    for name in ("theirs-b", "theirs-c"):  # the job pages (REST) refuse the same jobs
        assert httpx.get(f"{url}/api/v1/training-jobs/{name}/metrics", headers=auth).status_code == 403
    return {s["TrainingJobName"]: s["KeyMetrics"] for s in page.json()["TrainingJobSummaries"]}


def test_jobs_page_shows_metrics_only_of_jobs_the_key_may_describe(settings: Settings, server: ServerProcess) -> None:
    _job_rows(settings, finished={"mine-a": 0.91, "theirs-b": 0.42}, running={"theirs-c": 0.33})
    job = f"arn:aws:sagemaker:{settings.region}:{settings.account_id}:training-job"
    scoped = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "sagemaker:ListTrainingJobs", "Resource": "*"},
            {"Effect": "Allow", "Action": "sagemaker:DescribeTrainingJob", "Resource": f"{job}/mine-*"},
        ],
    }
    denied = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "sagemaker:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "sagemaker:DescribeTrainingJob", "Resource": f"{job}/theirs-*"},
        ],
    }
    for name, policy in (("scoped", scoped), ("denied", denied)):
        # Every job is listed, as ListTrainingJobs lists it; metrics (DescribeTrainingJob) only where allowed.
        assert _page(server.url, settings, name, policy) == {
            "mine-a": {"validation:accuracy": 0.91},
            "theirs-b": None,
            "theirs-c": None,
        }


def test_models_page_shows_what_a_model_holds_only_to_keys_that_may_describe_it(
    settings: Settings, server: ServerProcess, tmp_path
) -> None:
    from tailor import Client
    from tailor.auth.keys import KeyStore
    from tests.serving.artifacts import build_artifact

    tar = build_artifact(tmp_path / "model.tar.gz")
    with Client(settings=settings) as local:  # the machine's own user, in-process: a local path is allowed
        for name in ("mine-m", "theirs-m"):
            local.create_model(ModelName=name, PrimaryContainer={"ModelDataUrl": str(tar)})
    model = f"arn:aws:sagemaker:{settings.region}:{settings.account_id}:model"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "sagemaker:ListModels", "Resource": "*"},
            {"Effect": "Allow", "Action": "sagemaker:DescribeModel", "Resource": f"{model}/mine-*"},
        ],
    }
    key = KeyStore(settings).create("models-scoped", policy)
    auth = {"Authorization": f"Bearer {token_for(settings, key.info.access_key_id)}"}
    page = httpx.get(f"{server.url}/console/api/models", headers=auth)
    assert page.status_code == 200, page.text
    shapes = {m["ModelName"]: (m["ImageShape"], m["SizeBytes"] is not None) for m in page.json()["Models"]}
    assert shapes == {"mine-m": ([1, 28, 28], True), "theirs-m": (None, False)}
    assert httpx.get(f"{server.url}/api/v1/models/theirs-m", headers=auth).status_code == 403
