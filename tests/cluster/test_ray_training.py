"""Training jobs on a real Ray cluster (head + host-a + host-b, 1 CPU each), data and models on S3 (moto).

1. One instance and two instances of the same job both complete with one artifact; the two instances ran on
   different hosts and reach the one-instance job's validation accuracy within noise; the job has resource
   samples of its instances' algorithms.
2. A host killed mid-training (its raylet SIGKILLed): the job restarts both instances from the checkpoint in
   S3 on the two hosts left of three, and completes; its status transitions show the restart.
3. StopTrainingJob ends a running two-instance job Stopped, its instances gone.
4. Refusals: no S3 endpoint, own code, an unknown InstanceType at CreateTrainingJob; more instances than the
   cluster can hold fail with the reason within the resource wait; an algorithm error on a node fails the job
   with the algorithm's reason.
"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tailor import Client
from tailor.data.recordio import IRHeader, pack, write_records
from tailor.errors import ValidationError
from tailor.settings import Settings
from tailor.storage import Storage
from tests.algorithms.helpers import fashion_subset
from tests.cluster.ray_nodes import RayCluster

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

TRAIN, VALIDATION = 600, 500
# 600 images, 3 epochs: accuracies land around 0.6-0.7 (tests/algorithms/test_distributed.py, which measured up
# to 8 points between 2 x 32 and 1 x 64 from per-rank BatchNorm statistics and another data order; 400 images and
# 2 epochs gave 0.40-0.49, too close to the start to compare).
TOLERANCE = 0.1
INSTANCE_TYPES = '["ml.m5.large"]\ncpus = 1\nmemory_gib = 0\n'


@pytest.fixture(scope="module")
def data_uri(moto_server: str, dataset_mirror: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Fashion-MNIST in a bucket of the moto server as one RecordIO file per channel, once for the module."""
    home = tmp_path_factory.mktemp("upload")
    settings = Settings(
        home=home, s3_endpoint_url=moto_server, s3_access_key_id="testing", s3_secret_access_key="testing"
    )
    storage = Storage(settings)
    storage.ensure_bucket("cluster-data")
    for split, source, n in (("train", "train", TRAIN), ("validation", "t10k", VALIDATION)):
        x, y = fashion_subset(dataset_mirror, source, n)
        rec = home / f"{split}.rec"
        write_records(rec, [(i, pack(IRHeader(0, float(y[i]), i), _png(x[i]))) for i in range(n)])
        storage.upload_file(rec, f"s3://cluster-data/fm/{split}/{split}.rec")
    return "s3://cluster-data/fm"


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img[0]).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def ray_settings(s3_settings: Settings, two_hosts: RayCluster) -> Settings:
    (s3_settings.home / "instance_types.toml").write_text(INSTANCE_TYPES)
    Storage(s3_settings).ensure_bucket("cluster-out")
    return s3_settings.model_copy(
        update={
            "backend": "ray",
            "ray_address": two_hosts.address,
            "ray_resource_wait_seconds": 40.0,
            "job_stop_grace_seconds": 10.0,
            "job_sample_interval_seconds": 1.0,
        }
    )


def spec(name: str, data: str, instances: int, *, batch: int, epochs: int) -> dict[str, Any]:
    def channel(c: str) -> dict[str, Any]:
        return {
            "ChannelName": c,
            "ContentType": "application/x-recordio",
            "DataSource": {"S3DataSource": {"S3Uri": f"{data}/{c}"}},
        }

    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": "tailor/image-classification"},
        "HyperParameters": {
            "num_classes": "10",
            "num_training_samples": str(TRAIN),
            "image_shape": "1,28,28",
            "epochs": str(epochs),
            "mini_batch_size": str(batch),
            "time_budget": "",
            "log_interval": "2",
        },
        "InputDataConfig": [channel("train"), channel("validation")],
        "OutputDataConfig": {"S3OutputPath": "s3://cluster-out/models"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": instances},
    }


def _final(desc: dict[str, Any], metric: str) -> float:
    return next(m["Value"] for m in desc["FinalMetricDataList"] if m["MetricName"] == metric)


def _placed(log: str) -> list[str]:
    """The hosts each placement put algo-1, algo-2… on, from the driver's placement lines."""
    return re.findall(r"placement group: .*? ready in [0-9.]+ s: (.*)", log)


def _wait_log(path: Path, pattern: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not re.search(pattern, path.read_text() if path.exists() else ""):
        assert time.monotonic() < deadline, f"{pattern!r} not in the log within {timeout:g} s"
        time.sleep(0.2)


@pytest.mark.timeout(480)  # the first test of the session also starts the cluster (2.5 min at load 19)
def test_two_instances_on_two_hosts_match_one(ray_settings: Settings, data_uri: str) -> None:
    with Client(settings=ray_settings) as client:
        two = client.create_training_job(spec("ray-2", data_uri, 2, batch=16, epochs=3)).wait(timeout=180)
        one = client.create_training_job(spec("ray-1", data_uri, 1, batch=32, epochs=3)).wait(timeout=180)
    assert two["TrainingJobStatus"] == "Completed", two.get("FailureReason")
    assert one["TrainingJobStatus"] == "Completed", one.get("FailureReason")
    log = (ray_settings.jobs_dir / "ray-2" / "training.log").read_text()
    [placed] = _placed(log)
    assert re.search(r"algo-1 on host-[ab] .*algo-2 on host-[ab]", placed), placed
    assert len(set(re.findall(r"host-[ab]", placed))) == 2, placed  # one instance per host
    assert "global batch 32 (mini_batch_size is per worker" in log
    # rank 0's metric lines once; rank 1 announced itself under its own prefix
    assert sum("Validation-accuracy=" in ln for ln in log.splitlines()) == 3
    assert re.search(r"^\[algo-2\] \[rank 1\] torch.distributed: 2 processes", log, re.M)
    storage = Storage(ray_settings)
    assert storage.exists("s3://cluster-out/models/ray-2/output/model.tar.gz")
    assert two["ModelArtifacts"]["S3ModelArtifacts"] == "s3://cluster-out/models/ray-2/output/model.tar.gz"
    acc2, acc1 = _final(two, "validation:accuracy"), _final(one, "validation:accuracy")
    assert acc1 > 0.5 and abs(acc2 - acc1) <= TOLERANCE, (acc2, acc1)
    # Resource samples of the instances' algorithms on their nodes, summed: two 1-CPU trainers, ~2 processes each.
    with Client(settings=ray_settings) as client:
        samples = client.training_job_resources("ray-2")
    assert len(samples) >= 3 and max(x["CPUUtilization"] for x in samples) > 20, samples
    assert max(x["MemoryRSSBytes"] for x in samples) > 2 * 150 * 2**20, samples  # torch alone: ~190 MiB each


@pytest.mark.timeout(420)
def test_lost_host_restarts_from_the_checkpoint(ray_settings: Settings, data_uri: str, two_hosts: RayCluster) -> None:
    # A third host joins first (starting a node mid-test takes over 30 s on a loaded 2-core machine and may fail):
    # the job takes two of the three, loses one, and resumes on the other two.
    two_hosts.add_node("host-c")
    log = ray_settings.jobs_dir / "ray-loss" / "training.log"
    storage = Storage(ray_settings)
    try:
        with Client(settings=ray_settings) as client:
            job = client.create_training_job(spec("ray-loss", data_uri, 2, batch=16, epochs=3))
            deadline = time.monotonic() + 150
            while not storage.exists("s3://cluster-out/models/ray-loss/checkpoints/last.json"):  # epoch 0's
                assert time.monotonic() < deadline, "no checkpoint in S3 within 150 s"
                time.sleep(0.2)
            victim = re.search(r"algo-2 on (host-[abc])", log.read_text()).group(1)
            two_hosts.nodes.pop(victim).kill()  # out of the fixture's nodes: the next test's two_hosts restarts it
            killed = time.monotonic()
            desc = job.wait(timeout=200)
            took = time.monotonic() - killed
    finally:
        if "host-c" in two_hosts.nodes:
            two_hosts.nodes.pop("host-c").kill()
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    text = log.read_text()
    statuses = [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    assert statuses[-5:] == ["Training", "Restarting", "Training", "Uploading", "Completed"], statuses
    restarting = next(t for t in desc["SecondaryStatusTransitions"] if t["Status"] == "Restarting")
    assert re.match(rf"node {victim} lost at epoch \d: restarting 2 instance", restarting["StatusMessage"])
    first, second = _placed(text)
    assert victim in first and victim not in second, (first, second)
    assert re.search(r"Resumed from checkpoint after epoch \d", text)
    assert took < 150, took


@pytest.mark.timeout(200)
def test_stop_ends_the_instances(ray_settings: Settings, data_uri: str) -> None:
    log = ray_settings.jobs_dir / "ray-stop" / "training.log"
    with Client(settings=ray_settings) as client:
        job = client.create_training_job(spec("ray-stop", data_uri, 2, batch=16, epochs=200))
        _wait_log(log, r"Epoch\[0\] Batch", 120)
        t0 = time.monotonic()
        client.stop_training_job("ray-stop")
        desc = job.wait(timeout=60)
        took = time.monotonic() - t0
    assert desc["TrainingJobStatus"] == "Stopped", desc.get("FailureReason")
    text = log.read_text()
    assert "SIGTERM: forwarding it to every instance" in text
    assert "Stop requested: checkpoint written" in text
    assert took < 30, took
    assert Storage(ray_settings).list("s3://cluster-out/models/ray-stop/checkpoints/")  # the stop's checkpoint


@pytest.mark.timeout(200)
def test_refusals_and_no_resources(ray_settings: Settings, data_uri: str) -> None:
    quick = ray_settings.model_copy(update={"ray_resource_wait_seconds": 3.0})
    with Client(settings=quick) as client:
        desc = client.create_training_job(spec("ray-three", data_uri, 3, batch=16, epochs=1)).wait(timeout=60)
        assert desc["TrainingJobStatus"] == "Failed"
        assert desc["FailureReason"].startswith(
            "CapacityError: no resources for 3 instance(s) of ml.m5.large ({CPU 1} each) within 3 s"
        ), desc["FailureReason"]
        # an algorithm error on the node: the job fails with the algorithm's own reason, its paths the job's
        Storage(quick).write_bytes("s3://cluster-data/broken/train/train.rec", b"not a RecordIO file")
        broken = spec("ray-broken", "s3://cluster-data/broken", 1, batch=16, epochs=1)
        broken["InputDataConfig"] = broken["InputDataConfig"][:1]
        desc = client.create_training_job(broken).wait(timeout=120)
        assert desc["TrainingJobStatus"] == "Failed"
        assert desc["FailureReason"].startswith("AlgorithmError: "), desc["FailureReason"]
        assert "train.rec" in desc["FailureReason"] and "tailor-ray" not in desc["FailureReason"]
        bad = spec("ray-bad", data_uri, 1, batch=16, epochs=1)
        bad["ResourceConfig"]["InstanceType"] = "ml.unknown"
        with pytest.raises(ValidationError, match="unknown InstanceType 'ml.unknown'"):
            client.create_training_job(bad)
        own = spec("ray-own", data_uri, 1, batch=16, epochs=1)
        own["AlgorithmSpecification"] = {"ContainerEntrypoint": ["true"]}
        with pytest.raises(ValidationError, match="own training code does not run on the ray backend"):
            client.create_training_job(own)
    no_s3 = quick.model_copy(update={"s3_endpoint_url": None})
    with Client(settings=no_s3) as client, pytest.raises(ValidationError, match="the ray backend needs S3"):
        client.create_training_job(spec("ray-local", "s3://cluster-data/fm", 1, batch=16, epochs=1))
