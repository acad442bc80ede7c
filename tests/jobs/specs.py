"""Job specs for tests: the fake training command (fake_algo.py) under Tailor's job-dir contract."""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from tailor.settings import Settings
from tailor.storage import Storage


def _readable_copy(script: Path) -> str:
    """A copy of the script where any uid can read it: as root the job runs under its own uid, which cannot
    enter a checkout kept in a private directory (e.g. a clone under /root)."""
    folder = Path(tempfile.mkdtemp(prefix="tailor-fake-algo-"))
    folder.chmod(0o755)
    copy = folder / script.name
    shutil.copyfile(script, copy)
    copy.chmod(0o644)
    atexit.register(shutil.rmtree, folder, True)
    return str(copy)


FAKE_ALGO = _readable_copy(Path(__file__).with_name("fake_algo.py"))
TRAIN_URI = "s3://data/train"


def put_train_data(settings: Settings) -> str:
    storage = Storage(settings)
    storage.write_bytes(f"{TRAIN_URI}/part-0.txt", b"0 1 2\n")
    storage.write_bytes(f"{TRAIN_URI}/sub/part-1.txt", b"3 4 5\n")
    return TRAIN_URI


def fake_spec(name: str, max_runtime: int | None = None, **hp: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "ContainerEntrypoint": [sys.executable, FAKE_ALGO],
            "MetricDefinitions": [
                {"Name": "train:accuracy", "Regex": r"Epoch\[\d+\] Train-accuracy=([0-9.]+)"},
                {"Name": "validation:accuracy", "Regex": r"Epoch\[\d+\] Validation-accuracy=([0-9.]+)"},
                {"Name": "train:loss", "Regex": r"Epoch\[\d+\] Train-loss=([0-9.]+)"},
            ],
        },
        "HyperParameters": {"epochs": "3", "sleep": "0.05", **hp},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": TRAIN_URI}}}],
        "OutputDataConfig": {"S3OutputPath": "s3://out/jobs"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    if max_runtime:
        spec["StoppingCondition"] = {"MaxRuntimeInSeconds": max_runtime}
    return spec


def wait_for(predicate: Any, timeout: float = 20.0, poll: float = 0.05) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"condition not met within {timeout} s")
