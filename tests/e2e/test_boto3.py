"""Done-when: plain boto3 (`sagemaker`, `sagemaker-runtime`, `s3`) drives Tailor end to end.

A real S3-compatible server (`moto_server`) on loopback is shared by the team's own boto3 `s3` client and by
Tailor (its storage setting points there). Tailor's server runs on loopback, closed by default; boto3 signs
with an admin key for the control plane and with an invoke-only key (the seed's policy) for the endpoint.
"""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image

from tailor.auth.keys import Credentials, KeyStore, init_admin
from tailor.data.recordio import IRHeader, pack, write_records
from tailor.settings import Settings, load_settings
from tests.algorithms.helpers import fashion_subset

pytestmark = pytest.mark.slow  # a server, moto and a training job

BUILTIN_IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/image-classification:1"
FAST = Config(retries={"max_attempts": 1}, read_timeout=120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def moto_s3(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    log = (tmp_path / "moto.log").open("wb")
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, "moto_server did not start"
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def tailor_on_s3(_isolated_home: Path, moto_s3: str) -> Iterator[tuple[str, Settings]]:
    import uvicorn

    from tailor.api.app import create_app

    settings = load_settings(
        home=str(_isolated_home),
        s3_endpoint_url=moto_s3,
        s3_access_key_id="team",
        s3_secret_access_key="team-secret",
        job_sample_interval_seconds=1.0,
    ).ensure_dirs()
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", settings
    server.should_exit = True
    thread.join(30)


def _client(service: str, url: str, creds: Credentials) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        config=FAST,
    )


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img[0]).save(buf, format="PNG")
    return buf.getvalue()


def _rec(path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    write_records(
        path,
        [(i, pack(IRHeader(0, float(y), i), _png(x))) for i, (x, y) in enumerate(zip(images, labels, strict=True))],
    )
    return path


def test_boto3_trains_deploys_and_invokes(
    dataset_mirror: str, tailor_on_s3: tuple[str, Settings], moto_s3: str, tmp_path: Path
) -> None:
    url, settings = tailor_on_s3
    admin_new, _ = init_admin(settings)
    admin = Credentials(admin_new.info.access_key_id, admin_new.secret_access_key)
    sm = _client("sagemaker", url, admin)
    s3 = _client("s3", moto_s3, Credentials("team", "team-secret"))

    # 1. The team's own s3 client uploads RecordIO files (1,500 train / 300 validation Fashion-MNIST images).
    x, y = fashion_subset(dataset_mirror, "train", 1800)
    s3.create_bucket(Bucket="team-data")
    for name, sl in (("train", slice(0, 1500)), ("validation", slice(1500, 1800))):
        rec = _rec(tmp_path / f"{name}.rec", x[sl], y[sl])
        s3.upload_file(str(rec), "team-data", f"fmnist/{name}/{name}.rec")

    # 2. CreateTrainingJob with SageMaker's built-in image; hyperparameters keep it to a few seconds.
    channels = [
        {
            "ChannelName": name,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://team-data/fmnist/{name}/",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "ContentType": "application/x-recordio",
            "CompressionType": "None",
        }
        for name in ("train", "validation")
    ]
    sm.create_training_job(
        TrainingJobName="fmnist-boto3",
        AlgorithmSpecification={"TrainingImage": BUILTIN_IMAGE, "TrainingInputMode": "File"},
        RoleArn=f"arn:aws:iam::{settings.account_id}:role/SageMakerRole",
        InputDataConfig=channels,
        OutputDataConfig={"S3OutputPath": "s3://team-data/fmnist/output"},
        ResourceConfig={"InstanceType": "ml.p2.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        HyperParameters={
            "num_classes": "10",
            "num_training_samples": "1500",
            "image_shape": "1,28,28",
            "architecture": "fast",
            "epochs": "4",
            "mini_batch_size": "64",
            "learning_rate": "0.05",
        },
    )
    sm.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName="fmnist-boto3", WaiterConfig={"Delay": 1, "MaxAttempts": 300}
    )
    job = sm.describe_training_job(TrainingJobName="fmnist-boto3")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["ResourceConfig"]["InstanceType"] == "ml.p2.xlarge"
    # SageMaker's defaults recorded as resolved, but no ResNet depth beside the fast net (it has none).
    assert job["HyperParameters"]["optimizer"] == "sgd" and "num_layers" not in job["HyperParameters"]
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact.startswith("s3://team-data/fmnist/output/fmnist-boto3/")
    key = artifact.removeprefix("s3://team-data/")
    assert s3.head_object(Bucket="team-data", Key=key)["ContentLength"] > 0  # written to the team's S3 server
    summaries = sm.list_training_jobs(StatusEquals="Completed")["TrainingJobSummaries"]
    assert [s["TrainingJobName"] for s in summaries] == ["fmnist-boto3"]

    _deploy_and_invoke(sm, url, settings, artifact, dataset_mirror)


def _deploy_and_invoke(sm: Any, url: str, settings: Settings, artifact: str, dataset_mirror: str) -> None:
    # 3. Model, endpoint config, endpoint; wait InService.
    sm.create_model(
        ModelName="fmnist-model",
        PrimaryContainer={"Image": BUILTIN_IMAGE, "ModelDataUrl": artifact},
        ExecutionRoleArn=f"arn:aws:iam::{settings.account_id}:role/SageMakerRole",
    )
    sm.create_endpoint_config(
        EndpointConfigName="fmnist-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "fmnist-model",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m4.xlarge",
            }
        ],
    )
    sm.create_endpoint(EndpointName="fmnist", EndpointConfigName="fmnist-config")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="fmnist", WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    assert [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]] == ["fmnist"]

    # 4. An invoke-only key with the seed's policy document, exactly as written.
    seed_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sagemaker:InvokeEndpoint",
                "Resource": f"arn:aws:sagemaker:us-east-1:{settings.account_id}:endpoint/fmnist",
            }
        ],
    }
    invoker_new = KeyStore(settings).create("app", seed_policy)
    invoker = Credentials(invoker_new.info.access_key_id, invoker_new.secret_access_key)
    runtime = _client("sagemaker-runtime", url, invoker)
    tx, ty = fashion_subset(dataset_mirror, "t10k", 40)
    right = 0
    for img, label in zip(tx, ty, strict=True):
        resp = runtime.invoke_endpoint(EndpointName="fmnist", ContentType="application/x-image", Body=_png(img))
        probs = json.loads(resp["Body"].read())
        assert len(probs) == 10 and abs(sum(probs) - 1) < 1e-3
        right += int(np.argmax(probs) == int(label))
    assert right >= 24, f"{right}/40 right"  # "most": a 4-epoch net on 1,500 images manages ~75-80 %

    # 5. The invoke-only key can do nothing else, and no key but one allowed can invoke.
    with pytest.raises(ClientError) as err:
        _client("sagemaker", url, invoker).delete_endpoint(EndpointName="fmnist")
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    nobody_new = KeyStore(settings).create("nobody")
    nobody = _client("sagemaker-runtime", url, Credentials(nobody_new.info.access_key_id, nobody_new.secret_access_key))
    with pytest.raises(ClientError) as err:
        nobody.invoke_endpoint(EndpointName="fmnist", ContentType="application/x-image", Body=_png(tx[0]))
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    # 6. Tear down with the waiter AWS code uses.
    sm.delete_endpoint(EndpointName="fmnist")
    sm.get_waiter("endpoint_deleted").wait(EndpointName="fmnist", WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    sm.delete_endpoint_config(EndpointConfigName="fmnist-config")
    sm.delete_model(ModelName="fmnist-model")
