"""Endpoint runtime logs and data capture over a real Tailor server on loopback: boto3 (CreateEndpointConfig
with DataCaptureConfig, DescribeEndpointConfig/DescribeEndpoint shapes, InvokeEndpoint), captured records in
SageMaker's layout, the log over REST (paging, auth), the SDK, `tailor endpoints logs` (and `-f` until the
endpoint is deleted), and a killed worker whose crash and restart the log tells with the reason."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from click.testing import CliRunner

from tailor import Client
from tailor.auth.keys import KeyStore
from tailor.cli.main import cli
from tailor.hosting.capture_records import decode
from tailor.settings import Settings
from tailor.storage import Storage
from tests.serving.artifacts import png_bytes

pytestmark = pytest.mark.slow  # a server and model workers (the artifact is tests/hosting/conftest.py's)


def _boto(service: str, url: str, settings: Settings, key_id: str, secret: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=settings.region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )


def _wait_for(predicate: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_logs_and_capture_end_to_end(
    settings: Settings, api_server: str, admin_credentials: Any, model_tar: Path
) -> None:
    creds = (admin_credentials.access_key_id, admin_credentials.secret_access_key)
    sm = _boto("sagemaker", api_server, settings, *creds)
    runtime = _boto("sagemaker-runtime", api_server, settings, *creds)
    Storage(settings).upload_file(model_tar, "s3://models/fm/model.tar.gz")
    sm.create_model(ModelName="fm", PrimaryContainer={"ModelDataUrl": "s3://models/fm/model.tar.gz"})
    capture = {
        "EnableCapture": True,
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": "s3://monitor/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
    }
    sm.create_endpoint_config(
        EndpointConfigName="fm",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "fm", "InitialInstanceCount": 1}],
        DataCaptureConfig=capture,
    )
    assert sm.describe_endpoint_config(EndpointConfigName="fm")["DataCaptureConfig"] == capture
    # One-line refusals: KMS (not done here), a destination that is not in a bucket.
    for bad, says in (
        ({"KmsKeyId": "alias/k"}, "KmsKeyId is not supported"),
        ({"DestinationS3Uri": "file:///etc"}, "s3://"),
    ):
        with pytest.raises(sm.exceptions.ClientError) as err:
            sm.create_endpoint_config(
                EndpointConfigName="bad",
                ProductionVariants=[{"VariantName": "A", "ModelName": "fm"}],
                DataCaptureConfig={**capture, **bad},
            )
        assert err.value.response["Error"]["Code"] == "ValidationException" and says in str(err.value)
    sm.create_endpoint(EndpointName="fm", EndpointConfigName="fm")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="fm", WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    assert sm.describe_endpoint(EndpointName="fm")["DataCaptureConfig"] == {
        "EnableCapture": True,
        "CaptureStatus": "Started",
        "CurrentSamplingPercentage": 100,
        "DestinationS3Uri": "s3://monitor/capture",
    }

    res = CliRunner().invoke(cli, ["endpoints", "describe", "--url", api_server, "fm"])
    assert res.exit_code == 0 and "DataCapture       Started, 100 % to s3://monitor/capture" in res.output, res.output

    # Invocations: every answered one is captured, in SageMaker's layout and record format.
    bodies = [png_bytes(i) for i in range(6)]
    answers = [runtime.invoke_endpoint(EndpointName="fm", Body=b, ContentType="image/png") for b in bodies]
    assert all(re.fullmatch(r"[0-9a-f-]{36}", a["ResponseMetadata"]["RequestId"]) for a in answers)
    outputs = [a["Body"].read().decode() for a in answers]
    root = settings.buckets_dir / "monitor" / "capture" / "fm" / "AllTraffic"
    lines = _wait_for(
        lambda: (
            (ls := [json.loads(x) for f in root.rglob("*.jsonl") for x in f.read_text().splitlines()])
            and len(ls) >= 6
            and ls
        ),
        timeout=15,
    )
    files = [f.relative_to(root).as_posix() for f in root.rglob("*.jsonl")]
    assert all(re.fullmatch(r"\d{4}/\d{2}/\d{2}/\d{2}/\d{2}-\d{2}-\d{3}-[0-9a-f-]{36}\.jsonl", f) for f in files)
    assert len(lines) == 6 and {r["eventVersion"] for r in lines} == {"0"}
    assert sorted(decode(r["captureData"]["endpointInput"]) for r in lines) == sorted(bodies)
    assert sorted(r["captureData"]["endpointOutput"]["data"] for r in lines) == sorted(outputs)
    assert {r["captureData"]["endpointOutput"]["encoding"] for r in lines} == {"JSON"}

    # A failed invocation: its request id is in the runtime log.
    with pytest.raises(runtime.exceptions.ClientError) as err:
        runtime.invoke_endpoint(EndpointName="fm", Body=b"not an image", ContentType="image/png")
    failed_id = err.value.response["ResponseMetadata"]["RequestId"]

    # Kill the worker: the supervisor restarts it and the log says why.
    with Client(url=api_server) as client:
        start = client.endpoint_logs("fm")
        assert "tailor: CreateEndpoint: config fm" in start["Text"] and "endpoint InService" in start["Text"]
        assert re.search(r"worker \w+: tailor worker \d+ ready: model loaded in \d+\.\d\d s", start["Text"])
        assert re.search(r"tailor: worker \w+ ready in \d+\.\d\d s", start["Text"])
        pid = int(re.search(r"starting: .* pid (\d+)", start["Text"]).group(1))
        os.kill(pid, signal.SIGKILL)
        text = _wait_for(lambda: (t := client.endpoint_logs("fm")["Text"]).count(" ready in ") >= 2 and t, 60)
    assert re.search(r"worker (\w+) crashed: killed by SIGKILL; restarting it \(restart 1\)", text), text
    assert re.search(rf"invocation {failed_id} failed on variant AllTraffic: 400 Validation\w+: .*JPEG or PNG", text)
    assert str(settings.home) not in text and admin_credentials.secret_access_key not in text

    # UpdateEndpoint to a config capturing inputs only: the log tells the switch, records hold no output.
    input_only = {
        **capture,
        "DestinationS3Uri": "s3://monitor/input-only",
        "CaptureOptions": [{"CaptureMode": "Input"}],
    }
    variants = [{"VariantName": "Blue", "ModelName": "fm", "InitialInstanceCount": 1}]
    sm.create_endpoint_config(EndpointConfigName="fm-in", ProductionVariants=variants, DataCaptureConfig=input_only)
    sm.update_endpoint(EndpointName="fm", EndpointConfigName="fm-in")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="fm", WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    for b in bodies[:3]:
        assert (
            runtime.invoke_endpoint(EndpointName="fm", Body=b, ContentType="image/png")["InvokedProductionVariant"]
            == "Blue"
        )
    with Client(url=api_server) as client:  # the SDK over REST shows the same config
        assert client.describe_endpoint_config("fm-in")["DataCaptureConfig"] == input_only
    blue = settings.buckets_dir / "monitor" / "input-only" / "fm" / "Blue"
    got = _wait_for(
        lambda: (
            (ls := [json.loads(x) for f in blue.rglob("*.jsonl") for x in f.read_text().splitlines()])
            and len(ls) >= 3
            and ls
        ),
        timeout=15,
    )
    assert len(got) == 3 and all(set(r["captureData"]) == {"endpointInput"} for r in got)
    prom = _rest(api_server, settings, "/metrics", {}).text
    assert 'tailor_data_capture_records_total{state="written"} 9.0' in prom
    assert 'tailor_data_capture_records_total{state="dropped"} 0.0' in prom
    with Client(url=api_server) as client:
        text = _wait_for(lambda: "update done" in (t := client.endpoint_logs("fm")["Text"]) and t, 30)
    assert "UpdateEndpoint: to config fm-in (generation 2), variants Blue: 1 x model fm" in text
    assert "traffic switched to generation 2 (config fm-in)" in text and "update done: generation 1 stopped" in text

    # REST: pages by offset; the same auth as DescribeEndpoint.
    page = _rest(api_server, settings, "/api/v1/endpoints/fm/logs", {"limit": 200})
    assert page.status_code == 200 and 0 < len(page.json()["Text"]) <= 200
    rest = _rest(api_server, settings, "/api/v1/endpoints/fm/logs", {"offset": page.json()["NextOffset"]})
    assert page.json()["Text"] + rest.json()["Text"] == text[: len(page.json()["Text"] + rest.json()["Text"])]
    allowed = {"Effect": "Allow", "Action": "sagemaker:DescribeEndpoint", "Resource": "*"}
    denied = {"Effect": "Deny", "Action": "sagemaker:DescribeEndpoint", "Resource": "*:endpoint/fm"}
    other = KeyStore(settings).create("reader", {"Version": "2012-10-17", "Statement": [allowed, denied]})
    refused = _rest(api_server, settings, "/api/v1/endpoints/fm/logs", {}, other)
    assert refused.status_code == 403 and "DescribeEndpoint" in refused.text
    assert _rest(api_server, settings, "/api/v1/endpoints/nope/logs", {}).status_code == 404

    # The CLI prints the log; -f follows until the endpoint is deleted.
    res = CliRunner().invoke(cli, ["endpoints", "logs", "--url", api_server, "fm"])
    assert res.exit_code == 0 and "restarting it (restart 1)" in res.output, res.output
    env = {**os.environ, "TAILOR_HOME": str(settings.home)}
    follow = subprocess.Popen(
        [sys.executable, "-m", "tailor.cli.main", "endpoints", "logs", "-f", "--url", api_server, "fm"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    streamed: list[str] = []
    rest_started = threading.Event()

    def rest_follow() -> None:
        signed = _rest(api_server, settings, "/api/v1/endpoints/fm/logs", {"follow": "true"}, send=False)
        with httpx.stream("GET", signed.url, headers=signed.headers, timeout=60) as r:
            for text_chunk in r.iter_text():
                streamed.append(text_chunk)
                rest_started.set()

    reader = threading.Thread(target=rest_follow)
    reader.start()
    try:
        first = follow.stdout.readline()  # both followers are running before the endpoint goes
        assert rest_started.wait(30) and "CreateEndpoint" in first
        sm.delete_endpoint(EndpointName="fm")
        out = first + follow.stdout.read()  # until the follower exits (pytest's timeout bounds it)
        follow.wait(30)
        reader.join(60)
    finally:
        follow.kill()
    assert follow.returncode == 0, follow.stderr.read()
    assert out.rstrip().endswith("tailor: endpoint deleted") and "DeleteEndpoint: stopping every worker" in out
    assert not reader.is_alive() and "".join(streamed) == out  # REST's follow=true streamed the same text


def _rest(
    url: str, settings: Settings, path: str, params: dict[str, Any], new_key: Any = None, send: bool = True
) -> Any:
    """A GET signed with the admin key of this home, or with ``new_key`` (a KeyStore.create answer); with
    ``send=False`` the signed request itself (to stream it)."""
    from tailor.auth import sigv4
    from tailor.auth.keys import resolve_credentials

    if new_key is None:
        creds = resolve_credentials(settings)
        key_id, secret = creds.access_key_id, creds.secret_access_key
    else:
        key_id, secret = new_key.info.access_key_id, new_key.secret_access_key
    request = httpx.Request("GET", url + path, params=params)
    headers = sigv4.sign(
        method="GET",
        url=str(request.url),
        headers={},
        body=b"",
        access_key_id=key_id,
        secret=secret,
        region=settings.region,
    )
    signed = httpx.Request("GET", request.url, headers=headers)
    return httpx.Client(timeout=30).send(signed) if send else signed
