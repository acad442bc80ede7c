"""The REST API and the SDK over HTTP against a real `tailor server` on loopback."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import httpx
import psutil
import pytest

from tailor import Client
from tailor.errors import ConflictError, NotFoundError, ValidationError
from tailor.settings import Settings
from tests.api.conftest import ServerProcess
from tests.jobs.specs import fake_spec, put_train_data, wait_for

pytestmark = pytest.mark.slow  # servers killed and restarted mid-job (~30 s)


def test_sdk_over_http_runs_a_job_to_completed(settings: Settings, server: ServerProcess) -> None:
    put_train_data(settings)
    with Client(url=server.url) as client:
        job = client.create_training_job(fake_spec("http-ok"))
        desc = job.wait(timeout=30)
        assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
        assert desc["CreationTime"].tzinfo is not None  # datetimes, as in-process
        assert desc["ModelArtifacts"]["S3ModelArtifacts"] == "s3://out/jobs/http-ok/output/model.tar.gz"
        assert [p["Value"] for p in job.metrics("validation:accuracy")] == pytest.approx([0.45, 0.55, 0.65])
        assert "Epoch[2] Train-accuracy=0.700000" in job.logs()
        listed = client.list_training_jobs(NameContains="http")["TrainingJobSummaries"]
        assert [s["TrainingJobName"] for s in listed] == ["http-ok"]
        with pytest.raises(ConflictError, match="already exists"):
            client.create_training_job(fake_spec("http-ok"))
        with pytest.raises(NotFoundError):
            client.describe_training_job("missing")
        with pytest.raises(ValidationError, match="Invalid TrainingJobName"):
            client.create_training_job(fake_spec("bad name"))
    assert storage_has(settings, desc["ModelArtifacts"]["S3ModelArtifacts"])


def call(client: Client, method: str, path: str, **kwargs: object) -> httpx.Response:
    """A raw REST request, SigV4-signed the way the SDK signs (servers are closed by default)."""
    return client._http.send(client._signed(client._http.build_request(method, path, **kwargs)))


def storage_has(settings: Settings, uri: str) -> bool:
    from tailor.storage import Storage

    return Storage(settings).exists(uri)


def test_rest_envelope_follow_stream_stop_and_prometheus(settings: Settings, server: ServerProcess) -> None:
    put_train_data(settings)
    api = "/api/v1/training-jobs"
    client = Client(url=server.url)
    r = call(client, "POST", api, json=fake_spec("rest-stop", epochs="200", sleep="0.1"))
    assert r.status_code == 201 and r.json()["TrainingJobStatus"] == "InProgress"
    req = client._signed(client._http.build_request("GET", f"{api}/rest-stop/logs", params={"follow": "true"}))
    stream = client._http.send(req, stream=True)
    seen = ""
    for text in stream.iter_text():
        seen += text
        if "Epoch[1]" in seen:
            assert call(client, "POST", f"{api}/rest-stop/stop").json()["TrainingJobStatus"] == "InProgress"
            break
    stream.close()
    wait_for(lambda: call(client, "GET", f"{api}/rest-stop").json()["TrainingJobStatus"] == "Stopped", timeout=30)
    # the follow stream of a finished job ends by itself
    tail = call(client, "GET", f"{api}/rest-stop/logs", params={"follow": "true"}).text
    assert "SIGTERM at epoch" in tail and "Training job stopped" in tail
    assert call(client, "GET", f"{api}/rest-stop/resources").json()["Samples"]
    bad = call(client, "POST", api, json={"TrainingJobName": "x"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "ValidationException"
    missing = call(client, "GET", f"{api}/nope")
    assert missing.status_code == 404 and missing.json() == {
        "error": {"code": "ResourceNotFound", "message": "Training job 'nope' does not exist"}
    }
    conflict = call(client, "POST", f"{api}/rest-stop/stop")
    assert conflict.status_code == 400 and "only InProgress" in conflict.json()["error"]["message"]
    assert 'tailor_training_jobs{status="Stopped"} 1.0' in call(client, "GET", "/metrics").text
    assert httpx.get(f"{server.url}{api}").status_code in (401, 403)  # unsigned: refused
    client.close()


def test_server_killed_mid_job_restarts_consistent_with_no_orphan(
    settings: Settings, server_factory: Callable[..., ServerProcess]
) -> None:
    put_train_data(settings)
    first = server_factory()
    with Client(url=first.url) as client:
        job = client.create_training_job(fake_spec("killed", epochs="300", sleep="0.1"))
        wait_for(lambda: job.describe()["SecondaryStatus"] == "Training")
    pid = int(wait_for(lambda: _pid_in_log(settings)))
    assert psutil.pid_exists(pid)
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait()
    second = server_factory()
    with Client(url=second.url) as client:
        after = client.describe_training_job("killed")
        listed = client.list_training_jobs()["TrainingJobSummaries"]
    assert after["TrainingJobStatus"] == "Failed"
    assert after["FailureReason"] == "InternalFailure: the server restarted while the job ran"
    assert [s["TrainingJobName"] for s in listed] == ["killed"]
    wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, timeout=5)


def _pid_in_log(settings: Settings) -> str | None:
    log = settings.jobs_dir / "killed" / "training.log"
    text = log.read_text() if log.is_file() else ""
    return next((line.split()[0].removeprefix("pid=") for line in text.splitlines() if line.startswith("pid=")), None)
