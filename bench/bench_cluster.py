"""Cluster benchmark: what running on a Ray cluster costs, beside the local backend, same machine, same run.

``training``: time from CreateTrainingJob to the algorithm's first training step (its first ``Epoch[0] Batch``
log line) for the same job (Fashion-MNIST subset from S3, fast net, InstanceCount 2), once on the local backend
(torchrun on this machine) and once on the ray backend (a head and two 1-CPU hosts started here, channels read
from an S3 server by each instance). The ray path adds: a driver process joining the cluster, the placement
group, two actor processes, every instance downloading the channels; printed as the ratio of the two times.

Everything runs in a private network namespace (root only, as the cluster tests): Ray then advertises 127.0.0.1
only and the bench sends nothing off the machine.

Measured 2026-11-30 on the shared 2-core VM (``python -m bench cluster``; other engineers' suites running,
load average 5.6-7.5 during the two jobs), CreateTrainingJob -> first training step, InstanceCount 2:

    local (torchrun --standalone, channels staged by the server)     22.4 s
    ray   (driver, placement group, 2 actors, channels from S3)      32.4 s     ratio ray/local 1.45

The cluster itself (head + 2 hosts) started in 39.6 s and is not counted. The 10 s difference is the driver
joining the cluster (~5 s: Python, Ray's import and ray.init) and two actor processes starting and importing
Tailor and boto3 on 1-CPU hosts; downloading the channels (0.5 MB) takes well under a second.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import loadavg

REPO = Path(__file__).resolve().parents[1]
MIRROR = os.environ.get("TAILOR_DATASET_MIRROR", (REPO.parent / "shared" / "datasets").as_uri())
TRAIN, VALIDATION = 400, 200
FIRST_STEP = re.compile(r"Epoch\[0\] Batch")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench cluster")
    parser.add_argument("--instances", type=int, default=2)
    args, _ = parser.parse_known_args(argv)
    sys.path.insert(0, str(REPO))
    from tests import netns

    if not netns.enter():
        print("bench_cluster needs a private network namespace (run as root): Ray would advertise real interfaces")
        return
    training(args.instances)


def training(instances: int) -> dict[str, float]:
    """Seconds from CreateTrainingJob to the first training step, local vs ray, and their ratio."""
    from tests.cluster.ray_nodes import RayCluster
    from tests.conftest import free_port

    with tempfile.TemporaryDirectory(prefix="tailor-bench-cluster-") as tmp, _moto() as s3:
        cluster = RayCluster()
        try:
            t0 = time.perf_counter()
            cluster.start_head(free_port())
            for host in ("host-a", "host-b"):
                cluster.add_node(host)
            print(f"cluster of 3 nodes started in {time.perf_counter() - t0:.1f} s (load {loadavg()})", flush=True)
            base = _settings(Path(tmp), s3)
            data = _upload(base)
            local = _first_step(base.model_copy(update={"home": Path(tmp) / "local"}), data, "local", instances)
            ray_home = Path(tmp) / "ray"
            ray = _first_step(
                base.model_copy(update={"home": ray_home, "backend": "ray", "ray_address": cluster.address}),
                data,
                "ray",
                instances,
            )
        finally:
            cluster.stop()
    ratio = ray / local
    print(f"training: CreateTrainingJob -> first step, {instances} instances: local {local:.1f} s, ray {ray:.1f} s")
    print(f"          ratio ray/local {ratio:.2f} (load {loadavg()})", flush=True)
    return {"local_s": local, "ray_s": ray, "ratio": ratio}


def _settings(root: Path, s3: str) -> Any:
    from tailor.settings import load_settings

    return load_settings(
        home=str(root / "upload"),
        s3_endpoint_url=s3,
        s3_access_key_id="bench",
        s3_secret_access_key="bench",
        dataset_mirror=MIRROR,
    )


def _upload(settings: Any) -> str:
    """Fashion-MNIST subsets as one RecordIO file per channel in the S3 server."""
    from PIL import Image
    from tests.algorithms.helpers import fashion_subset

    from tailor.data.recordio import IRHeader, pack, write_records
    from tailor.storage import Storage

    storage = Storage(settings.ensure_dirs())
    for bucket in ("bench-data", "bench-out"):
        storage.ensure_bucket(bucket)
    for split, source, n in (("train", "train", TRAIN), ("validation", "t10k", VALIDATION)):
        x, y = fashion_subset(MIRROR, source, n)
        records = []
        for i in range(n):
            buf = io.BytesIO()
            Image.fromarray(x[i][0]).save(buf, format="PNG")
            records.append((i, pack(IRHeader(0, float(y[i]), i), buf.getvalue())))
        rec = settings.home / f"{split}.rec"
        write_records(rec, records)
        storage.upload_file(rec, f"s3://bench-data/fm/{split}/{split}.rec")
    return "s3://bench-data/fm"


def _first_step(settings: Any, data: str, label: str, instances: int) -> float:
    from tailor import Client

    settings = settings.ensure_dirs()
    (settings.home / "instance_types.toml").write_text('["ml.m5.large"]\ncpus = 1\nmemory_gib = 0\n')
    name = f"bench-{label}"
    log = settings.jobs_dir / name / "training.log"
    with Client(settings=settings) as client:
        t0 = time.perf_counter()
        job = client.create_training_job(_spec(name, data, instances))
        while not FIRST_STEP.search(log.read_text() if log.exists() else ""):
            if time.perf_counter() - t0 > 300:
                raise TimeoutError(f"{label}: no training step within 300 s")
            time.sleep(0.05)
        took = time.perf_counter() - t0
        client.stop_training_job(name)
        job.wait(timeout=120)
    print(f"  {label}: first training step {took:.1f} s after CreateTrainingJob (load {loadavg()})", flush=True)
    return took


def _spec(name: str, data: str, instances: int) -> dict[str, Any]:
    def channel(c: str) -> dict[str, Any]:
        uri = f"{data}/{c}"
        return {
            "ChannelName": c,
            "ContentType": "application/x-recordio",
            "DataSource": {"S3DataSource": {"S3Uri": uri}},
        }

    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": "tailor/image-classification"},
        "HyperParameters": {
            "num_classes": "10",
            "num_training_samples": str(TRAIN),
            "image_shape": "1,28,28",
            "epochs": "50",
            "mini_batch_size": "16",
            "time_budget": "",
            "log_interval": "1",
        },
        "InputDataConfig": [channel("train"), channel("validation")],
        "OutputDataConfig": {"S3OutputPath": "s3://bench-out/models"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": instances},
    }


@contextmanager
def _moto() -> Iterator[str]:
    from tests.conftest import moto

    with moto() as url:
        yield url


if __name__ == "__main__":
    main(sys.argv[1:])
