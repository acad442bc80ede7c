"""TrainingJobService in-process: lifecycle, failure, stop, max runtime, concurrency, validation, listing."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tailor.core import Tailor
from tailor.errors import ConflictError, NotFoundError, ValidationError
from tailor.settings import Settings
from tests.jobs.specs import fake_spec, put_train_data, wait_for


@pytest.fixture
def tailor(settings: Settings) -> Iterator[Tailor]:
    fast = settings.model_copy(update={"job_stop_grace_seconds": 1.0, "job_sample_interval_seconds": 0.2})
    put_train_data(fast)
    t = Tailor.open(fast)
    yield t
    t.close()


def test_job_runs_to_completed_with_metrics_logs_and_artifact(tailor: Tailor) -> None:
    created = tailor.jobs.create(fake_spec("fake-ok", sleep="0.3"))
    assert created["TrainingJobStatus"] == "InProgress"
    assert created["TrainingJobArn"] == "arn:aws:sagemaker:us-east-1:000000000000:training-job/fake-ok"
    desc = tailor.jobs.wait("fake-ok", timeout=30)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert [t["Status"] for t in desc["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert all("EndTime" in t for t in desc["SecondaryStatusTransitions"])
    final = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert final == pytest.approx({"train:accuracy": 0.7, "validation:accuracy": 0.65, "train:loss": 0.3333})
    assert desc["TrainingTimeInSeconds"] >= 0 and desc["TrainingEndTime"] >= desc["TrainingStartTime"]
    artifact = desc["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == "s3://out/jobs/fake-ok/output/model.tar.gz"
    local = tailor.storage.local_path(artifact)
    with tarfile.open(local) as tar:
        assert tar.getnames() == ["model.json"]
    points = tailor.jobs.metrics("fake-ok", "train:accuracy")
    assert [(p["Epoch"], p["Value"]) for p in points] == [(0, 0.5), (1, 0.6), (2, 0.7)]
    log = tailor.jobs.logs("fake-ok")
    assert log["Complete"] and "Epoch[2] Validation-accuracy=0.650000" in log["Text"]
    # channel staged with its layout under the prefix, and SageMaker's config files written
    assert "train files: ['part-0.txt', 'part-1.txt']" in log["Text"]
    job_dir = tailor.settings.jobs_dir / "fake-ok"
    assert (job_dir / "input/data/train/sub/part-1.txt").read_bytes() == b"3 4 5\n"
    for name in ("hyperparameters.json", "inputdataconfig.json", "resourceconfig.json"):
        assert (job_dir / "input/config" / name).is_file()
    assert tailor.jobs.resources("fake-ok"), "a 0.9 s job sampled every 0.2 s has resource samples"
    assert tailor.jobs.counts_by_status()["Completed"] == 1


def test_failing_algorithm_reports_its_failure_file(tailor: Tailor) -> None:
    tailor.jobs.create(fake_spec("fake-fail", fail="1"))
    desc = tailor.jobs.wait("fake-fail", timeout=30)
    assert desc["TrainingJobStatus"] == "Failed" and desc["SecondaryStatus"] == "Failed"
    assert desc["FailureReason"] == "AlgorithmError: ValueError: the fake algorithm was told to fail"
    assert "ModelArtifacts" not in desc


def test_crash_without_failure_file_reports_exit_code_and_log_tail(tailor: Tailor) -> None:
    tailor.jobs.create(fake_spec("fake-crash", crash="1"))
    desc = tailor.jobs.wait("fake-crash", timeout=30)
    assert desc["TrainingJobStatus"] == "Failed"
    assert "exited with code 3" in desc["FailureReason"] and "Traceback: something broke" in desc["FailureReason"]


def test_missing_model_or_unwritable_output_fails_never_completes(tailor: Tailor, tmp_path: Path) -> None:
    tailor.jobs.create(fake_spec("fake-nomodel", no_model="1"))
    desc = tailor.jobs.wait("fake-nomodel", timeout=30)
    assert desc["TrainingJobStatus"] == "Failed" and "wrote nothing" in desc["FailureReason"]
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the output folder should be")
    spec = fake_spec("fake-badout")
    spec["OutputDataConfig"] = {"S3OutputPath": (blocker / "out").as_uri()}
    tailor.jobs.create(spec)
    desc = tailor.jobs.wait("fake-badout", timeout=30)
    assert desc["TrainingJobStatus"] == "Failed" and "ModelArtifacts" not in desc
    assert [t["Status"] for t in desc["SecondaryStatusTransitions"]][-2:] == ["Uploading", "Failed"]


def test_stop_sends_sigterm_and_keeps_the_checkpoint(tailor: Tailor) -> None:
    tailor.jobs.create(fake_spec("fake-stop", epochs="100", sleep="0.2"))
    wait_for(lambda: tailor.jobs.metrics("fake-stop"))
    tailor.jobs.stop("fake-stop")
    desc = tailor.jobs.wait("fake-stop", timeout=30)
    assert (desc["TrainingJobStatus"], desc["SecondaryStatus"]) == ("Stopped", "Stopped")
    assert "Stopping" in [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    assert (tailor.settings.jobs_dir / "fake-stop/checkpoints/last.txt").read_text().startswith("epoch ")
    assert not psutil.pid_exists(_pid(tailor, "fake-stop")) or _zombie(_pid(tailor, "fake-stop"))
    with pytest.raises(ValidationError, match="only InProgress"):
        tailor.jobs.stop("fake-stop")


@pytest.mark.slow
def test_max_runtime_stops_with_max_runtime_exceeded_and_sigkill_after_grace(tailor: Tailor) -> None:
    # ignore_term: the process ignores SIGTERM, so only the SIGKILL after the 1 s grace ends it
    tailor.jobs.create(fake_spec("fake-timeout", max_runtime=1, epochs="100", sleep="0.1", ignore_term="1"))
    desc = tailor.jobs.wait("fake-timeout", timeout=30)
    assert (desc["TrainingJobStatus"], desc["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    log = tailor.jobs.logs("fake-timeout")["Text"]
    assert "MaxRuntimeInSeconds (1 s) exceeded" in log and "SIGKILL" in log
    assert desc["TrainingTimeInSeconds"] >= 1


@pytest.mark.slow
def test_concurrency_limit_makes_jobs_wait_visibly(tailor: Tailor) -> None:
    assert tailor.settings.max_concurrent_jobs == 1
    tailor.jobs.create(fake_spec("fake-first", epochs="4", sleep="0.25"))
    tailor.jobs.create(fake_spec("fake-second", epochs="1"))
    waiting = tailor.jobs.describe("fake-second")
    assert (waiting["TrainingJobStatus"], waiting["SecondaryStatus"]) == ("InProgress", "Starting")
    wait_for(
        lambda: "free slot" in tailor.jobs.describe("fake-second")["SecondaryStatusTransitions"][-1]["StatusMessage"]
    )
    first = tailor.jobs.wait("fake-first", timeout=30)
    second = tailor.jobs.wait("fake-second", timeout=30)
    assert first["TrainingJobStatus"] == second["TrainingJobStatus"] == "Completed"
    assert second["TrainingStartTime"] >= first["TrainingEndTime"]


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"TrainingJobName": "bad_name!"}, ValidationError, "Invalid TrainingJobName"),
        ({"TrainingJobName": "-leading"}, ValidationError, "Invalid TrainingJobName"),
        ({"Unknown": 1}, ValidationError, "Unknown member 'Unknown'"),
        (
            {
                "InputDataConfig": [
                    {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": "s3://data/none"}}}
                ]
            },
            ValidationError,
            "no data at s3://data/none",
        ),
        (
            {"AlgorithmSpecification": {"TrainingImage": "tailor/image-classification"}, "InputDataConfig": []},
            ValidationError,
            "needs a 'train' channel",
        ),
        (
            {
                "AlgorithmSpecification": {"TrainingImage": "tailor/image-classification"},
                "HyperParameters": {"num_classes": "10", "num_training_samples": "6", "bogus": "1"},
            },
            ValidationError,
            "bogus",
        ),
        ({"AlgorithmSpecification": {"TrainingImage": "my/own:image"}}, ValidationError, "not a built-in"),
        ({"OutputDataConfig": {"S3OutputPath": "ftp://x/y"}}, ValidationError, "unsupported URI scheme"),
    ],
)
def test_invalid_specs_are_rejected_with_no_row(tailor: Tailor, change: dict, error: type, message: str) -> None:
    spec = {**fake_spec("fake-invalid"), **change}
    with pytest.raises(error, match=message):
        tailor.jobs.create(spec)
    assert tailor.jobs.list()["TrainingJobSummaries"] == []


def test_duplicate_name_is_resource_in_use(tailor: Tailor) -> None:
    tailor.jobs.create(fake_spec("fake-dup", epochs="1"))
    with pytest.raises(ConflictError) as info:
        tailor.jobs.create(fake_spec("fake-dup"))
    assert info.value.code == "ResourceInUse"
    tailor.jobs.wait("fake-dup", timeout=30)
    with pytest.raises(NotFoundError):
        tailor.jobs.describe("nope")


def test_builtin_image_names_are_accepted_and_hyperparameters_resolved(tailor: Tailor) -> None:
    from tailor.jobs.spec import parse_spec

    for image in (
        "tailor/image-classification",
        "811284229777.dkr.ecr.us-east-1.amazonaws.com/image-classification:1",
        "433757028032.dkr.ecr.us-west-2.amazonaws.com/image-classification:latest",
    ):
        spec = parse_spec({**fake_spec("x"), "AlgorithmSpecification": {"TrainingImage": image}})
        assert spec.AlgorithmSpecification.builtin
        assert [m["Name"] for m in spec.metric_definitions()][:2] == ["train:accuracy", "validation:accuracy"]
    sagemaker = parse_spec(
        {
            **fake_spec("x"),
            "AlgorithmSpecification": {
                "TrainingImage": "811284229777.dkr.ecr.us-east-1.amazonaws.com/image-classification:1"
            },
            "HyperParameters": {"num_classes": "10", "num_training_samples": "6"},
        }
    )
    resolved = tailor.jobs._resolve(sagemaker).HyperParameters
    assert resolved["num_layers"] == "152" and resolved["epochs"] == "30"  # SageMaker's defaults exactly


def test_list_filters_sort_and_pagination(tailor: Tailor) -> None:
    for name in ("list-a", "list-b", "other-c"):
        tailor.jobs.create(fake_spec(name, epochs="1", sleep="0"))
    for name in ("list-a", "list-b", "other-c"):
        tailor.jobs.wait(name, timeout=30)
    names = lambda out: [s["TrainingJobName"] for s in out["TrainingJobSummaries"]]  # noqa: E731
    assert names(tailor.jobs.list(NameContains="LIST", SortBy="Name", SortOrder="Ascending")) == ["list-a", "list-b"]
    page1 = tailor.jobs.list(MaxResults=2, SortBy="Name", SortOrder="Ascending")
    page2 = tailor.jobs.list(MaxResults=2, SortBy="Name", SortOrder="Ascending", NextToken=page1["NextToken"])
    assert names(page1) == ["list-a", "list-b"] and names(page2) == ["other-c"] and "NextToken" not in page2
    assert names(tailor.jobs.list(StatusEquals="Failed")) == []
    created = tailor.jobs.describe("list-b")["CreationTime"]
    assert "list-a" not in names(tailor.jobs.list(CreationTimeAfter=created.isoformat()))
    with pytest.raises(ValidationError):
        tailor.jobs.list(NextToken="garbage")


def test_restart_fails_orphaned_jobs_and_kills_their_processes(settings: Settings) -> None:
    """A job whose supervising process is gone is failed on the next start; its process group is killed."""
    import subprocess
    import sys

    from tailor.jobs.store import TrainingJobRow

    put_train_data(settings)
    t = Tailor.open(settings)
    t.jobs.create(fake_spec("fake-orphan", epochs="1"))
    t.jobs.wait("fake-orphan", timeout=30)
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    dead_owner = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_owner.wait()
    with t.db.session() as s:
        row = s.get(TrainingJobRow, "fake-orphan")
        row.status, row.secondary_status = "InProgress", "Training"
        row.owner_pid, row.owner_start_time = dead_owner.pid, 1.0
        row.pid, row.pgid = orphan.pid, os.getpgid(orphan.pid)
        row.process_start_time = psutil.Process(orphan.pid).create_time()
    assert t.jobs.recover() == ["fake-orphan"]
    assert orphan.wait(timeout=5) == -9
    desc = t.jobs.describe("fake-orphan")
    assert desc["TrainingJobStatus"] == "Failed" and "restarted" in desc["FailureReason"]
    t.close()


def _pid(tailor: Tailor, name: str) -> int:
    from tailor.jobs.store import TrainingJobRow

    with tailor.db.session() as s:
        return s.get(TrainingJobRow, name).pid


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
