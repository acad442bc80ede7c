"""The ray backend's training half without a cluster: what it refuses at CreateTrainingJob, what it hands the
driver, and which output lines become status transitions (tests/cluster/test_ray_training.py runs jobs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailor.backends.base import TrainingInputs
from tailor.backends.instance_types import load_table
from tailor.backends.ray_driver import Driver, Instance
from tailor.backends.ray_training import RayTraining
from tailor.errors import ValidationError
from tailor.settings import Settings


def _training(settings: Settings) -> RayTraining:
    backend = RayTraining()
    backend.settings = settings
    backend.instance_types = load_table(None)
    return backend


def test_refuses_what_nodes_cannot_run(settings: Settings) -> None:
    with pytest.raises(ValidationError, match=r"needs S3 \(s3_endpoint_url"):
        _training(settings).check_training(instance_type="ml.m5.large", instance_count=2, own_code=False)
    s3 = _training(settings.model_copy(update={"s3_endpoint_url": "http://127.0.0.1:9"}))
    s3.check_training(instance_type="ml.m5.large", instance_count=2, own_code=False)
    with pytest.raises(ValidationError, match="own training code does not run on the ray backend"):
        s3.check_training(instance_type="ml.m5.large", instance_count=1, own_code=True)
    with pytest.raises(ValidationError, match="unknown InstanceType 'local' on the ray backend"):
        s3.check_training(instance_type="local", instance_count=1, own_code=False)


def test_description_carries_the_job_not_the_home(settings: Settings, tmp_path: Path) -> None:
    job = settings.jobs_dir / "j"
    (job / "input" / "config").mkdir(parents=True)
    (job / "input" / "config" / "hyperparameters.json").write_text('{"epochs": "2"}')
    backend = _training(settings.model_copy(update={"s3_endpoint_url": "http://127.0.0.1:9", "ray_address": "a:1"}))
    inputs = TrainingInputs("j", {"train": "s3://b/train"}, "s3://b/out/j/checkpoints", "ml.p3.2xlarge", 2)
    desc = backend.description(["python", "-m", "x", "--job-dir", str(job)], job, {"HOME": str(job)}, inputs)
    assert desc["bundle"] == {"CPU": 8.0, "GPU": 1.0, "memory": float(61 << 30)}
    assert desc["config"] == {"hyperparameters.json": '{"epochs": "2"}'}
    assert desc["channels"] == {"train": "s3://b/train"} and desc["instance_count"] == 2
    assert desc["storage"]["s3_endpoint_url"] == "http://127.0.0.1:9"
    json.dumps(desc)  # it travels as JSON on the driver's stdin


def test_status_lines_and_forged_ones(capsys: pytest.CaptureFixture[str]) -> None:
    backend = RayTraining()
    line = "[tailor-ray] status Restarting: node host-b lost at epoch 3: restarting 2 instance(s)"
    assert backend.status_change(line) == ("Restarting", "node host-b lost at epoch 3: restarting 2 instance(s)")
    assert backend.status_change("[algo-2] " + line) is None
    assert backend.status_change("Epoch[3] Train-accuracy=0.5") is None
    # an instance printing the driver's marker is prefixed, so no algorithm can forge a transition
    driver = Driver.__new__(Driver)
    driver.epoch = None
    driver.forward(Instance(0, None), "out", line)
    driver.forward(Instance(0, None), "out", "[11/30/2026 09:41:38 INFO] Epoch[4] Train-accuracy=0.5")
    driver.forward(Instance(1, None), "out", "Epoch[4] Train-accuracy=0.5")
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "[algo-1] " + line,
        "[11/30/2026 09:41:38 INFO] Epoch[4] Train-accuracy=0.5",
        "[algo-2] Epoch[4] Train-accuracy=0.5",
    ]
    assert driver.epoch == 4
