"""The SageMaker training contract: the failure path in a real subprocess, and a tiny job end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tailor.algorithms.image_classification import run
from tailor.serving.loader import load_model
from tests.algorithms.helpers import fashion_subset

pytestmark = pytest.mark.slow  # whole training jobs, 15-20 s each


def _job(tmp_path: Path, hyperparameters: dict[str, str]) -> Path:
    job = tmp_path / "job"
    (job / "input" / "config").mkdir(parents=True)
    (job / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (job / "input" / "config" / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
    )
    return job


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"mini_batch_siz": "32"}, "Additional properties are not allowed ('mini_batch_siz' was unexpected)"),
        ({"optimizer": "adagrad"}, "Invalid value 'adagrad' for hyperparameter 'optimizer': valid values are"),
    ],
)
def test_bad_hyperparameter_fails_before_training(tmp_path: Path, extra: dict[str, str], reason: str) -> None:
    job = _job(tmp_path, {"num_classes": "10", "num_training_samples": "100", **extra})
    proc = subprocess.run(
        [sys.executable, "-m", "tailor.algorithms.image_classification", "--job-dir", str(job)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    failure = (job / "output" / "failure").read_text()
    assert failure.startswith(reason) and len(failure) <= 1024
    assert not (job / "model").exists()


@pytest.mark.timeout(120)
def test_tiny_job_end_to_end(dataset_mirror: str, tmp_path: Path) -> None:
    x, y = fashion_subset(dataset_mirror, "train", 200)
    job = _job(
        tmp_path,
        {
            "num_classes": "10",
            "num_training_samples": "200",
            "image_shape": "1,28,28",
            "epochs": "2",
            "mini_batch_size": "50",
            "time_budget": "",
        },
    )
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        folder = job / "input" / "data" / "train" / f"class{int(label)}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0]).save(folder / f"{i}.png")
    assert run(job, cache_dir=tmp_path / "cache") == 0
    resolved = json.loads((job / "output" / "resolved_hyperparameters.json").read_text())
    assert resolved["architecture"] == "fast" and resolved["epochs"] == "2"
    model = load_model(job / "model" / "model.tar.gz")
    assert model.meta.class_names == [f"class{i}" for i in range(10)]
    probs = model.predict(x[:4])
    assert probs.shape == (4, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)
