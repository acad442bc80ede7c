"""Hosting over a real Tailor server on loopback: REST + SDK over HTTP, the runtime invocation route (also via
boto3's sagemaker-runtime), error codes, the CLI (`invoke`, `endpoints metrics`) and Prometheus /metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from tailor import Client
from tailor.cli.main import cli
from tailor.errors import PayloadTooLargeError, UnsupportedMediaTypeError, ValidationError
from tailor.settings import Settings
from tailor.storage import Storage
from tests.serving.artifacts import CLASS_NAMES, build_artifact, png_bytes

pytestmark = pytest.mark.slow  # a server and model workers


@pytest.fixture(scope="module")
def model_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_artifact(tmp_path_factory.mktemp("artifact") / "model.tar.gz")


def test_hosting_over_http(
    settings: Settings, api_server: str, admin_credentials, model_tar: Path, tmp_path: Path
) -> None:
    # A remote caller names objects in buckets, never local paths: the artifact goes to a bucket first.
    Storage(settings).upload_file(model_tar, "s3://models/fm/model.tar.gz")
    with Client(url=api_server) as client:
        client.create_model(ModelName="fm", PrimaryContainer={"ModelDataUrl": "s3://models/fm/model.tar.gz"})
        client.create_endpoint_config(
            EndpointConfigName="fm", ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "fm"}]
        )
        client.create_endpoint(EndpointName="fm", EndpointConfigName="fm")
        desc = client.wait_endpoint("fm", timeout=120)
        assert desc["EndpointStatus"] == "InService" and desc["CreationTime"].tzinfo is not None
        assert [e["EndpointName"] for e in client.list_endpoints()["Endpoints"]] == ["fm"]

        out = client.invoke_endpoint("fm", png_bytes(1), "image/png")
        probs = np.array(json.loads(out["Body"]))
        assert out["InvokedProductionVariant"] == "AllTraffic" and probs.shape == (10,)
        lines = client.invoke_endpoint("fm", png_bytes(1), "image/png", accept="application/jsonlines")["Body"]
        assert np.allclose(json.loads(lines)["prediction"], probs)

        with pytest.raises(ValidationError, match="JPEG or PNG"):
            client.invoke_endpoint("fm", b"garbage", "image/png")
        with pytest.raises(UnsupportedMediaTypeError):
            client.invoke_endpoint("fm", png_bytes(1), "text/csv")
        with pytest.raises(PayloadTooLargeError):
            client.invoke_endpoint("fm", b"\0" * (6 * 1024 * 1024 + 1), "image/png")
        with pytest.raises(ValidationError, match=f"^Endpoint nope of account {settings.account_id} not found.$"):
            client.invoke_endpoint("nope", png_bytes(1), "image/png")

    # Closed by default: an unsigned invocation is refused with AWS's error shape.
    r = httpx.post(
        f"{api_server}/endpoints/fm/invocations", content=png_bytes(1), headers={"Content-Type": "image/png"}
    )
    assert r.status_code == 403 and r.headers["x-amzn-errortype"]

    # boto3's sagemaker-runtime client speaks to the same route.
    import boto3

    runtime = boto3.client(
        "sagemaker-runtime",
        endpoint_url=api_server,
        region_name=settings.region,
        aws_access_key_id=admin_credentials.access_key_id,
        aws_secret_access_key=admin_credentials.secret_access_key,
    )
    sagemaker = boto3.client(
        "sagemaker",
        endpoint_url=api_server,
        region_name=settings.region,
        aws_access_key_id=admin_credentials.access_key_id,
        aws_secret_access_key=admin_credentials.secret_access_key,
    )
    listed = sagemaker.list_endpoints(StatusEquals="InService", SortBy="Name")["Endpoints"]
    assert [e["EndpointName"] for e in listed] == ["fm"]
    described = sagemaker.describe_endpoint(EndpointName="fm")
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    resp = runtime.invoke_endpoint(EndpointName="fm", Body=png_bytes(1), ContentType="image/png")
    assert resp["InvokedProductionVariant"] == "AllTraffic"
    assert np.allclose(json.loads(resp["Body"].read()), probs)
    # A 500x400 colour photo for the 28x28 grey model: SageMaker's answer, and the metrics count the mismatch.
    photo = runtime.invoke_endpoint(EndpointName="fm", Body=png_bytes(2, (500, 400), "RGB"), ContentType="image/png")
    assert len(json.loads(photo["Body"].read())) == 10

    # Error codes as botocore's models list them: InvokeEndpoint's client errors are ValidationError (a missing
    # endpoint worded as SageMaker words it), the control plane's ValidationException.
    def client_error(call, **kwargs) -> tuple[str, int, str]:  # noqa: ANN001
        with pytest.raises(ClientError) as exc:
            call(**kwargs)
        r = exc.value.response
        return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Message"]

    missing = f"Endpoint nope of account {settings.account_id} not found."
    assert client_error(runtime.invoke_endpoint, EndpointName="nope", Body=b"x", ContentType="image/png") == (
        "ValidationError",
        400,
        missing,
    )
    code, status, message = client_error(
        runtime.invoke_endpoint, EndpointName="fm", Body=b"xx", ContentType="image/png"
    )
    assert (code, status) == ("ValidationError", 400) and "JPEG or PNG" in message
    code, status, _ = client_error(runtime.invoke_endpoint, EndpointName="fm", Body=b"xx", ContentType="text/csv")
    assert (code, status) == ("ValidationError", 415)
    assert client_error(sagemaker.describe_model, ModelName="nope")[:2] == ("ValidationException", 400)
    assert client_error(sagemaker.delete_endpoint_config, EndpointConfigName="nope")[:2] == ("ValidationException", 400)
    code, status, message = client_error(
        sagemaker.create_endpoint_config,
        EndpointConfigName="fm",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "fm"}],
    )
    assert (code, status) == ("ValidationException", 400) and "already exists" in message

    # The CLI: `tailor invoke` prints seed-style lines; metrics count what was sent (2 SDK ok, 2 SDK and 2 boto3
    # client errors that reached the endpoint, 2 boto3 calls and the CLI's own call).
    image = tmp_path / "shirt.png"
    image.write_bytes(png_bytes(1))
    runner = CliRunner()
    res = runner.invoke(cli, ["invoke", "--url", api_server, "fm", str(image), "--top-k", "3"])
    assert res.exit_code == 0, res.output
    printed = res.output.strip().splitlines()
    assert len(printed) == 3 and all(re.fullmatch(r".+ \(\d\.\d{6}\)", line) for line in printed)
    best = int(np.argmax(probs))
    assert printed[0] == f"{CLASS_NAMES[best]} ({probs[best]:.6f})"

    res = runner.invoke(cli, ["endpoints", "metrics", "--url", api_server, "fm", "--json"])
    assert res.exit_code == 0, res.output
    points = json.loads(res.output)["Metrics"]
    assert sum(p["Invocations"] for p in points) == 2 + 2 + 2 + 2 + 1  # ok x2, 400 + 415 twice, boto3 x2, CLI
    assert sum(p["Invocation4XXErrors"] for p in points) == 4
    assert sum(p["MismatchedInputs"] for p in points) == 1  # the colour photo; every other image was 28x28 grey
    # Percentiles and realised batch size (the console's ModelLatencyP50/P99 and BatchSize): the 5 decodable
    # images ran in the worker's batches; the 400/415 answers never queued.
    assert sum(p["BatchedImages"] for p in points) == 5
    assert all(0 < p["ModelLatencyP50"] <= p["ModelLatencyP99"] for p in points if p["Invocations"])
    assert all(p["BatchSize"] >= 1 for p in points if p["Batches"])
    res = runner.invoke(cli, ["endpoints", "metrics", "--url", api_server, "fm"])
    assert res.exit_code == 0 and "P99_US" in res.output and "MISMATCHED" in res.output, res.output

    with Client(url=api_server) as client:  # /metrics needs a credential (the admin key's signature here)
        prom = client._http.send(client._signed(client._http.build_request("GET", "/metrics"))).text
    assert re.search(r'tailor_endpoint_invocations_total\{endpoint="fm",variant="AllTraffic"\} 9\.0', prom), prom
    # The realised batch size: the 5 decodable images (2 SDK, 2 boto3, CLI) ran in batches; 400/415 never queue.
    batched = re.search(
        r'tailor_worker_batched_images_total\{endpoint="fm",variant="AllTraffic",worker="\w+"\} (\S+)', prom
    )
    assert batched and float(batched.group(1)) == 5.0, prom

    res = runner.invoke(cli, ["endpoints", "delete", "--url", api_server, "fm"])
    assert res.exit_code == 0 and "deleted" in res.output
