"""The job runner on its own: the command and environment of the training contract, where channel objects land,
and that every process it starts, signals or samples goes through the backend it is given."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tailor.backends import LocalBackend
from tailor.db import Database
from tailor.jobs.runner import JobRunner
from tailor.jobs.service import TrainingJobService
from tailor.jobs.spec import parse_spec
from tailor.settings import Settings
from tailor.storage import Storage, relative_key
from tests.jobs.specs import fake_spec, put_train_data

SAGEMAKER_IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/image-classification:1"


def builtin_spec(image: str, instances: int = 1) -> dict[str, Any]:
    return {
        "TrainingJobName": "builtin",
        "AlgorithmSpecification": {"TrainingImage": image},
        "InputDataConfig": [
            {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": "s3://data/train"}}},
            {"ChannelName": "val-1.x", "DataSource": {"S3DataSource": {"S3Uri": "s3://data/val"}}},
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://out/jobs"},
        "ResourceConfig": {"InstanceCount": instances},
        "Environment": {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "ACTIVE"},
        "HyperParameters": {"num_classes": "10"},
    }


def runner(settings: Settings, raw: dict[str, Any], backend: Any = None) -> JobRunner:
    return JobRunner(
        settings=settings,
        db=Database(settings),
        storage=Storage(settings),
        spec=parse_spec(raw),
        slots=threading.Semaphore(1),
        stop_event=threading.Event(),
        backend=backend or LocalBackend(),
    )


@pytest.mark.parametrize(
    ("image", "profile"),
    [
        ("tailor/image-classification", "tailor"),
        ("tailor/image-classification:latest", "tailor"),
        (SAGEMAKER_IMAGE, "sagemaker"),
    ],
)
def test_builtin_command_runs_the_registered_entry_point_with_the_image_s_profile(
    settings: Settings, image: str, profile: str
) -> None:
    r = runner(settings, builtin_spec(image))
    assert r.contract.command()[:7] == [
        sys.executable,
        *["-m", "tailor.algorithms.image_classification", "--job-dir", str(settings.jobs_dir / "builtin")],
        *["--defaults", profile],
    ]
    assert r.contract.command()[7] == "--cache-dir"


def test_several_instances_run_under_torchrun(settings: Settings) -> None:
    cmd = runner(settings, builtin_spec("tailor/image-classification", instances=2)).contract.command()
    assert cmd[:5] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert cmd[5:7] == ["-m", "tailor.algorithms.image_classification"]
    own = fake_spec("own")
    own["ResourceConfig"]["InstanceCount"] = 3
    cmd = runner(settings, own).contract.command()
    assert cmd[3:6] == ["--standalone", "--nproc_per_node=3", "--no-python"]
    assert cmd[6:] == own["AlgorithmSpecification"]["ContainerEntrypoint"]


def test_environment_follows_sagemaker_and_the_spec_wins(settings: Settings) -> None:
    env = runner(settings, builtin_spec("tailor/image-classification", instances=2)).contract.environment()
    job = settings.jobs_dir / "builtin"
    assert env["SM_MODEL_DIR"] == str(job / "model") and env["TAILOR_JOB_DIR"] == str(job)
    assert env["SM_CHANNEL_TRAIN"] == str(job / "input" / "data" / "train")
    assert env["SM_CHANNEL_VAL_1_X"] == str(job / "input" / "data" / "val-1.x")
    assert env["SM_HOSTS"] == '["algo-1", "algo-2"]' and env["SM_HPS"] == '{"num_classes": "10"}'
    assert env["OMP_NUM_THREADS"] == "1" and env["OMP_WAIT_POLICY"] == "ACTIVE"  # the job's own Environment wins


@pytest.mark.parametrize(
    ("prefix", "key", "landing"),
    [
        ("s3://b/data/train", "data/train/part-0", "part-0"),
        ("s3://b/data/train/", "data/train/sub/part-1", "sub/part-1"),
        ("s3://b/data/train.rec", "data/train.rec", "train.rec"),  # a single object: its file name
        ("s3://b/data/tr", "data/train/x", "train/x"),  # a key prefix, not a folder: keep what follows the folder
        ("s3://b", "top.txt", "top.txt"),
    ],
)
def test_channel_objects_land_relative_to_the_channel_prefix(prefix: str, key: str, landing: str) -> None:
    assert relative_key(prefix, key, f"s3://b/{key}") == landing
    assert relative_key("/local/dir", "a/b.png", "/local/dir/a/b.png") == "a/b.png"  # local listings as given


class RecordingBackend(LocalBackend):
    """The local backend, remembering what the job layer asked of it."""

    def __init__(self, fail_start: bool = False) -> None:
        super().__init__()
        self.fail_start = fail_start
        self.started: list[tuple[list[str], Path]] = []
        self.signals: list[int] = []
        self.sampled: list[int] = []

    def start_training(self, cmd: list[str], *, cwd: Path, env: Mapping[str, str]) -> Any:
        if self.fail_start:
            raise FileNotFoundError(2, "No such file or directory")
        self.started.append((cmd, cwd))
        return super().start_training(cmd, cwd=cwd, env=env)

    def signal_group(self, group: int | None, sig: int = signal.SIGKILL) -> None:
        self.signals.append(sig)
        super().signal_group(group, sig)

    def sampler(self, pid: int) -> Any:
        self.sampled.append(pid)
        return super().sampler(pid)


@pytest.fixture
def fast(settings: Settings) -> Iterator[Settings]:
    put_train_data(settings)
    yield settings.model_copy(update={"job_stop_grace_seconds": 1.0, "job_sample_interval_seconds": 0.2})


def service(settings: Settings, backend: RecordingBackend) -> TrainingJobService:
    db = Database(settings).create_all()
    return TrainingJobService(settings, db, Storage(settings), backend=backend).start()


def test_the_job_s_process_is_started_signalled_and_sampled_through_the_backend(fast: Settings) -> None:
    backend = RecordingBackend()
    jobs = service(fast, backend)
    try:
        jobs.create(fake_spec("seam", sleep="0.2"))
        assert jobs.wait("seam", timeout=30)["TrainingJobStatus"] == "Completed"
    finally:
        jobs.close()
    ((cmd, cwd),) = backend.started
    assert any(arg.endswith("fake_algo.py") for arg in cmd) and cwd == fast.jobs_dir / "seam"  # (maybe sandboxed)
    assert backend.sampled and backend.signals == [signal.SIGKILL]  # the group is cleaned up at the end


def test_a_command_that_cannot_start_fails_the_job_with_a_reason(fast: Settings) -> None:
    jobs = service(fast, RecordingBackend(fail_start=True))
    try:
        jobs.create(fake_spec("nostart"))
        desc = jobs.wait("nostart", timeout=30)
    finally:
        jobs.close()
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("AlgorithmError: cannot start") and "No such file" in desc["FailureReason"]


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("ValueError: bad input", "AlgorithmError: ValueError: bad input"),  # the algorithm's: classified here
        ("AlgorithmError on rank 1 of 2: KeyError: 'x'", "AlgorithmError on rank 1 of 2: KeyError: 'x'"),
        ("CapacityError: no resources for 2 instance(s)", "CapacityError: no resources for 2 instance(s)"),
        ("InternalServerError: node host-b lost at epoch 2", "InternalServerError: node host-b lost at epoch 2"),
    ],
)
def test_the_failure_reason_is_classified_once(fast: Settings, written: str, reason: str) -> None:
    jobs = service(fast, RecordingBackend())
    try:
        jobs.create(fake_spec("classified", fail=written))
        desc = jobs.wait("classified", timeout=30)
    finally:
        jobs.close()
    assert desc["TrainingJobStatus"] == "Failed" and desc["FailureReason"] == reason
