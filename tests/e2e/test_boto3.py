"""Plain boto3 (`sagemaker`, `s3`) drives Tailor end to end: upload .rec files, train, find the artifact.

A real S3-compatible server (`moto_server`) on loopback is shared by the team's own boto3 `s3` client and by
Tailor (its storage setting points there). Tailor's server runs on loopback, closed by default; boto3 signs
with an admin key made the way `tailor server init` makes it.
"""

from __future__ import annotations

import io
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
from PIL import Image

from tailor.auth.keys import Credentials, init_admin
from tailor.data.recordio import IRHeader, pack, write_records
from tailor.settings import Settings, load_settings
from tests.algorithms.helpers import fashion_subset

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


def test_boto3_trains_on_the_teams_s3_server(
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
    assert job["HyperParameters"]["num_layers"] == "152"  # SageMaker's default recorded as resolved
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact.startswith("s3://team-data/fmnist/output/fmnist-boto3/")
    key = artifact.removeprefix("s3://team-data/")
    assert s3.head_object(Bucket="team-data", Key=key)["ContentLength"] > 0  # written to the team's S3 server
    summaries = sm.list_training_jobs(StatusEquals="Completed")["TrainingJobSummaries"]
    assert [s["TrainingJobName"] for s in summaries] == ["fmnist-boto3"]
