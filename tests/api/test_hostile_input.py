"""Hostile bytes against a real server on loopback: decompression bombs, deeply nested JSON and broken
artifacts are answered at once with a 4xx in each surface's error shape, and no error names a server path."""

from __future__ import annotations

import base64
import io
import json
import tarfile
import time
from pathlib import Path

import httpx
import pytest

from tailor import Client
from tailor.auth.keys import Credentials
from tailor.errors import PayloadTooLargeError
from tailor.settings import Settings
from tailor.storage import Storage
from tests.api.test_sagemaker_auth import assert_aws_error, send, signed
from tests.serving.artifacts import build_artifact, png_bomb, png_bytes

pytestmark = pytest.mark.slow  # a server and model workers

DEEP = b"[" * 100_000
MEDIUM = json.dumps(
    {"ModelName": "m", "Tags": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}
).encode()


@pytest.fixture(scope="module")
def model_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_artifact(tmp_path_factory.mktemp("artifact") / "model.tar.gz")


def raw(client: Client, method: str, path: str, content: bytes, content_type: str) -> httpx.Response:
    """A signed request with exactly these bytes (the SDK would refuse to send most of them)."""
    request = client._http.build_request(method, path, content=content, headers={"Content-Type": content_type})
    return client._http.send(client._signed(request))


def test_bomb_and_nested_json_lines_are_refused_at_once_on_the_invocation_route(
    settings: Settings, api_server: str, model_tar: Path
) -> None:
    # A remote caller names objects in buckets, never local paths: the artifact goes to a bucket first.
    Storage(settings).upload_file(model_tar, "s3://models/fm/model.tar.gz")
    with Client(url=api_server, timeout=10) as client:
        client.create_model(ModelName="fm", PrimaryContainer={"ModelDataUrl": "s3://models/fm/model.tar.gz"})
        client.create_endpoint_config(
            EndpointConfigName="fm", ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "fm"}]
        )
        client.create_endpoint(EndpointName="fm", EndpointConfigName="fm")
        assert client.wait_endpoint("fm", timeout=120)["EndpointStatus"] == "InService"

        t0 = time.monotonic()
        with pytest.raises(PayloadTooLargeError, match="20000x20000"):
            client.invoke_endpoint("fm", png_bomb(), "image/png")
        assert time.monotonic() - t0 < 2.0
        r = raw(client, "POST", "/endpoints/fm/invocations", png_bomb(), "application/x-image")
        assert r.status_code == 413 and r.json()["__type"] == r.headers["x-amzn-errortype"] == "ValidationError"

        for body in (DEEP, b'{"data": ' + b"[" * 2000 + b"]" * 2000 + b"}"):
            t0 = time.monotonic()
            r = raw(client, "POST", "/endpoints/fm/invocations", body, "application/jsonlines")
            assert r.status_code == 400 and "nested deeper" in r.json()["message"], r.text
            assert time.monotonic() - t0 < 2.0
        line = json.dumps({"b64": base64.b64encode(png_bytes(1)).decode()}).encode()
        assert raw(client, "POST", "/endpoints/fm/invocations", line, "application/jsonlines").status_code == 200


def test_deeply_nested_json_is_400_on_the_sagemaker_protocol_and_rest(
    api_server: str, admin_credentials: Credentials
) -> None:
    for body in (DEEP, MEDIUM):
        req = signed(api_server, admin_credentials, "CreateModel", body)
        err = assert_aws_error(send(req), 400, "SerializationException")
        assert "nested deeper than 32 levels" in err["message"]
    with Client(url=api_server) as client:
        for path in ("/api/v1/training-jobs", "/api/v1/models", "/api/v1/endpoint-configs", "/api/v1/endpoints"):
            for body in (DEEP, MEDIUM):
                r = raw(client, "POST", path, body, "application/json")
                assert r.status_code == 400, (path, r.status_code, r.text)
        token = base64.urlsafe_b64encode(b"[" * 5000).decode()  # a page token is client bytes too
        r = raw(client, "GET", f"/api/v1/training-jobs?NextToken={token}", b"", "")
        assert r.status_code == 400 and "NextToken" in r.text, r.text
    req = signed(api_server, admin_credentials, "ListTrainingJobs", {"NextToken": base64.b64encode(DEEP).decode()})
    assert_aws_error(send(req), 400, "ValidationException")


def tarball(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_error_messages_never_name_server_paths(
    settings: Settings, api_server: str, admin_credentials: Credentials
) -> None:
    """Broken artifacts refused on every surface: the message names the caller's URI, not the server's cache
    or model directories (nor anything else under the server's home)."""
    storage = Storage(settings)
    broken = {
        "junk": b"not a tarball at all",
        "no-model-json": tarball({"weights.safetensors": b"x" * 10}),
        "old-format": tarball({"model.json": b'{"format_version": 0}'}),
        "not-json": tarball({"model.json": b"{oops"}),
        "no-weights": tarball({"model.json": b'{"format_version": 1, "image_shape": [1, 2, 2], "num_classes": 2}'}),
    }
    home = str(settings.home)
    with Client(url=api_server) as client:
        for i, (name, data) in enumerate(broken.items()):
            uri = f"s3://models/{name}/model.tar.gz"
            storage.write_bytes(uri, data)
            spec = {"ModelName": f"m{i}", "PrimaryContainer": {"ModelDataUrl": uri}}
            rest = raw(client, "POST", "/api/v1/models", json.dumps(spec).encode(), "application/json")
            sm = send(signed(api_server, admin_credentials, "CreateModel", spec))
            for r in (rest, sm):
                assert r.status_code == 400, (name, r.text)
                assert uri in r.text and home not in r.text and "/cache/" not in r.text, (name, r.text)

        # A model that unpacks but cannot load: ONNX Runtime's error names the file it read; the endpoint's
        # FailureReason names the model instead.
        meta = {"format_version": 1, "image_shape": [1, 28, 28], "num_classes": 10, "model": {"name": "resnet20"}}
        uri = "s3://models/garbled/model.tar.gz"
        storage.write_bytes(uri, tarball({"model.json": json.dumps(meta).encode(), "model.onnx": b"garbage" * 9}))
        client.create_model(ModelName="garbled", PrimaryContainer={"ModelDataUrl": uri})
        client.create_endpoint_config(
            EndpointConfigName="garbled", ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "garbled"}]
        )
        client.create_endpoint(EndpointName="garbled", EndpointConfigName="garbled")
        assert client.wait_endpoint("garbled", timeout=120)["EndpointStatus"] == "Failed"
        rest = raw(client, "GET", "/api/v1/endpoints/garbled", b"", "")
    sm = send(signed(api_server, admin_credentials, "DescribeEndpoint", {"EndpointName": "garbled"}))
    for r in (rest, sm):
        reason = r.json()["FailureReason"]
        assert "model 'garbled'" in reason and home not in reason, reason


def test_a_failed_jobs_reason_names_the_channel_uri_not_the_job_directory(
    settings: Settings, api_server: str, admin_credentials: Credentials
) -> None:
    """The built-in algorithm fails on a corrupt RecordIO file: FailureReason names the file by its URI."""
    Storage(settings).write_bytes("s3://data/bad/train.rec", b"\x00" * 64)
    spec = {
        "TrainingJobName": "corrupt",
        "AlgorithmSpecification": {"TrainingImage": "tailor/image-classification", "TrainingInputMode": "File"},
        "HyperParameters": {"num_classes": "2", "num_training_samples": "4", "image_shape": "1,28,28", "epochs": "1"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "ContentType": "application/x-recordio",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/bad/"}},
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://out/jobs"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    assert send(signed(api_server, admin_credentials, "CreateTrainingJob", spec)).status_code == 200
    describe = signed(api_server, admin_credentials, "DescribeTrainingJob", {"TrainingJobName": "corrupt"})
    deadline = time.monotonic() + 120
    while (desc := send(describe).json())["TrainingJobStatus"] not in ("Failed", "Completed"):
        assert time.monotonic() < deadline, desc
        time.sleep(0.5)
    reason = desc["FailureReason"]
    assert desc["TrainingJobStatus"] == "Failed" and "s3://data/bad/train.rec" in reason, reason
    assert str(settings.home) not in reason and "/jobs/corrupt" not in reason, reason
