"""TuningService in-process with the fake training command: trials as training jobs, the best one, Grid,
Hyperband early stopping, stop, validation, warm start and a restart that resumes the search."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tailor.core import Tailor
from tailor.errors import ConflictError, NotFoundError, ValidationError
from tailor.settings import Settings
from tests.jobs.specs import put_train_data, wait_for
from tests.tuning.specs import fake_tuning


def _fast(settings: Settings) -> Settings:
    update = {"job_stop_grace_seconds": 1.0, "job_sample_interval_seconds": 0.5, "max_concurrent_jobs": 2}
    s = settings.model_copy(update=update)
    put_train_data(s)
    return s


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return _fast(settings)


@pytest.fixture
def fast_each_db(store_settings: Settings) -> Settings:
    """On SQLite and on PostgreSQL: for the tests whose rows and locks differ between the two (the search's
    logic does not, so Grid, Hyperband and warm start run on SQLite only)."""
    return _fast(store_settings)


@pytest.fixture
def tailor(fast: Settings) -> Iterator[Tailor]:
    t = Tailor.open(fast)
    yield t
    t.close()


@pytest.fixture
def tailor_each_db(fast_each_db: Settings) -> Iterator[Tailor]:
    t = Tailor.open(fast_each_db)
    yield t
    t.close()


def _training(tailor: Tailor, trial: dict) -> bool:
    try:
        return tailor.jobs.describe(trial["TrainingJobName"])["SecondaryStatus"] == "Training"
    except NotFoundError:
        return False  # the trial is recorded an instant before its training job


def _trials(tailor: Tailor, name: str) -> list[dict]:
    return tailor.tuning.list_training_jobs(name, MaxResults=100)["TrainingJobSummaries"]


def test_random_tuning_job_completes_with_the_best_trial(tailor_each_db: Tailor) -> None:
    tailor = tailor_each_db
    created = tailor.tuning.create(fake_tuning("rand", max_jobs=3, parallel=2, RandomSeed=7))
    assert created["HyperParameterTuningJobStatus"] == "InProgress"
    assert created["HyperParameterTuningJobArn"].endswith(":hyper-parameter-tuning-job/rand")
    desc = tailor.tuning.wait("rand", timeout=60)
    assert desc["HyperParameterTuningJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["TrainingJobStatusCounters"] == {
        "Completed": 3,
        "InProgress": 0,
        "RetryableError": 0,
        "NonRetryableError": 0,
        "Stopped": 0,
    }
    assert desc["ObjectiveStatusCounters"] == {"Succeeded": 3, "Pending": 0, "Failed": 0}
    trials = _trials(tailor, "rand")
    assert len(trials) == 3
    for t in trials:
        assert re.fullmatch(r"rand-00[123]-[0-9a-f]{8}", t["TrainingJobName"])
        job = tailor.jobs.describe(t["TrainingJobName"])
        assert job["TuningJobArn"] == desc["HyperParameterTuningJobArn"]
        assert job["HyperParameters"]["scale"] == t["TunedHyperParameters"]["scale"]
        # the objective is the job's own last validation:accuracy; the fake scales 0.65 by `scale`
        final = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
        assert t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == final["validation:accuracy"]
        assert final["validation:accuracy"] == pytest.approx(
            0.7 * float(t["TunedHyperParameters"]["scale"]) - 0.05, abs=1e-6
        )
    best = max(trials, key=lambda t: t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    assert desc["BestTrainingJob"]["TrainingJobName"] == best["TrainingJobName"]
    ranked = tailor.tuning.list_training_jobs("rand", SortBy="FinalObjectiveMetricValue", SortOrder="Descending")
    first = tailor.tuning.list_training_jobs("rand", MaxResults=2)
    rest = tailor.tuning.list_training_jobs("rand", MaxResults=2, NextToken=first["NextToken"])
    assert [t["TrainingJobName"] for t in first["TrainingJobSummaries"] + rest["TrainingJobSummaries"]] == sorted(
        t["TrainingJobName"] for t in trials
    ) and "NextToken" not in rest
    with pytest.raises(ValidationError, match="unsupported list filter"):
        tailor.tuning.list_training_jobs("rand", NameContains="x")
    assert ranked["TrainingJobSummaries"][0]["TrainingJobName"] == best["TrainingJobName"]
    listed = tailor.tuning.list()["HyperParameterTuningJobSummaries"]
    assert [(s["HyperParameterTuningJobName"], s["Strategy"]) for s in listed] == [("rand", "Random")]
    # trials are ordinary training jobs, listed with all others
    names = {s["TrainingJobName"] for s in tailor.jobs.list(MaxResults=100)["TrainingJobSummaries"]}
    assert names == {t["TrainingJobName"] for t in trials}


def test_grid_runs_each_combination_once(tailor: Tailor) -> None:
    ranges = {"CategoricalParameterRanges": [{"Name": "scale", "Values": ["0.5", "1.0"]}]}
    spec = fake_tuning("grid", strategy="Grid", max_jobs=None, parallel=2, ranges=ranges)
    desc = tailor.tuning.wait(tailor.tuning.create(spec)["HyperParameterTuningJobName"], timeout=60)
    assert desc["HyperParameterTuningJobStatus"] == "Completed", desc.get("FailureReason")
    assert sorted(t["TunedHyperParameters"]["scale"] for t in _trials(tailor, "grid")) == ["0.5", "1.0"]
    assert desc["BestTrainingJob"]["TunedHyperParameters"] == {"scale": "1.0"}


@pytest.mark.slow  # 3 trials of 4 s, one at a time
def test_hyperband_stops_an_unpromising_trial_early(tailor: Tailor) -> None:
    # One at a time, 2 epochs of 2 s (one Hyperband bracket): a trial worse at epoch 1 than those before it stops
    # there. RandomSeed 1 runs the grid as 1.0, 0.5, 0.3 (GridSampler's seeded shuffle).
    ranges = {"CategoricalParameterRanges": [{"Name": "scale", "Values": ["1.0", "0.3", "0.5"]}]}
    spec = fake_tuning(
        "hb", strategy="Grid", max_jobs=None, ranges=ranges, static={"epochs": "2", "sleep": "2"}, RandomSeed=1
    )
    spec["HyperParameterTuningJobConfig"]["TrainingJobEarlyStoppingType"] = "Auto"
    desc = tailor.tuning.wait(tailor.tuning.create(spec)["HyperParameterTuningJobName"], timeout=90)
    assert desc["HyperParameterTuningJobStatus"] == "Completed", desc.get("FailureReason")
    trials = sorted(_trials(tailor, "hb"), key=lambda t: t["TrainingJobName"])
    stopped = [t for t in trials if t["TrainingJobStatus"] == "Stopped"]
    assert stopped, [(t["TunedHyperParameters"], t["TrainingJobStatus"]) for t in trials]
    for t in stopped:
        assert re.fullmatch(r"Stopped early by Hyperband at epoch \d: validation:accuracy .*", t["FailureReason"])
        job = tailor.jobs.describe(t["TrainingJobName"])
        assert job["TrainingJobStatus"] == "Stopped"
        assert job["SecondaryStatusTransitions"][-1]["StatusMessage"] == t["FailureReason"]
        # pruned because an earlier trial did better at the same epoch
        earlier = trials[: trials.index(t)]
        assert any(
            float(e["TunedHyperParameters"]["scale"]) > float(t["TunedHyperParameters"]["scale"]) for e in earlier
        )
    assert desc["TrainingJobStatusCounters"]["Stopped"] == len(stopped)
    assert desc["TrainingJobStatusCounters"]["Completed"] == 3 - len(stopped)
    assert desc["BestTrainingJob"]["TunedHyperParameters"] == {"scale": "1.0"}


@pytest.mark.slow
def test_stop_ends_the_tuning_job_stopped_with_its_trials(tailor_each_db: Tailor) -> None:
    tailor = tailor_each_db
    spec = fake_tuning("halt", max_jobs=4, parallel=2, static={"epochs": "30", "sleep": "1"})
    tailor.tuning.create(spec)
    wait_for(lambda: len(_trials(tailor, "halt")) == 2, timeout=20)
    assert tailor.tuning.stop("halt")["HyperParameterTuningJobStatus"] == "Stopping"
    desc = tailor.tuning.wait("halt", timeout=30)
    assert desc["HyperParameterTuningJobStatus"] == "Stopped"
    assert [t["TrainingJobStatus"] for t in _trials(tailor, "halt")] == ["Stopped", "Stopped"]
    assert desc["TrainingJobStatusCounters"]["Stopped"] == 2
    with pytest.raises(ValidationError, match="is Stopped"):
        tailor.tuning.stop("halt")


def test_requests_are_validated_before_anything_runs(tailor: Tailor) -> None:
    with pytest.raises(ValidationError, match="HyperParameterTuningJobName"):
        tailor.tuning.create(fake_tuning("a" * 33))
    with pytest.raises(ValidationError, match="objective metric 'validation:f1'"):
        spec = fake_tuning("bad-metric")
        spec["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"] = "validation:f1"
        tailor.tuning.create(spec)
    with pytest.raises(ValidationError, match="Grid strategy takes CategoricalParameterRanges only"):
        tailor.tuning.create(fake_tuning("bad-grid", strategy="Grid", max_jobs=None))
    with pytest.raises(ValidationError, match="Logarithmic scaling needs MinValue > 0"):
        ranges = {
            "ContinuousParameterRanges": [
                {"Name": "scale", "MinValue": "0", "MaxValue": "1", "ScalingType": "Logarithmic"}
            ]
        }
        tailor.tuning.create(fake_tuning("bad-log", ranges=ranges))
    with pytest.raises(ValidationError, match="both static and tuned"):
        tailor.tuning.create(fake_tuning("both", static={"scale": "1"}))
    with pytest.raises(ValidationError, match="no data at s3://nowhere"):
        spec = fake_tuning("no-data")
        spec["TrainingJobDefinition"]["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = "s3://nowhere/x"
        tailor.tuning.create(spec)
    with pytest.raises(NotFoundError):
        tailor.tuning.describe("missing")
    assert tailor.tuning.list()["HyperParameterTuningJobSummaries"] == []


def test_warm_start_seeds_the_study_and_reports_the_overall_best(tailor: Tailor) -> None:
    tailor.tuning.wait(
        tailor.tuning.create(fake_tuning("parent", max_jobs=2, RandomSeed=1))["HyperParameterTuningJobName"]
    )
    with pytest.raises(ConflictError):
        tailor.tuning.create(fake_tuning("parent"))
    child = fake_tuning("child", strategy="Bayesian", max_jobs=1, RandomSeed=2)
    child["WarmStartConfig"] = {
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "parent"}],
        "WarmStartType": "IdenticalDataAndAlgorithm",
    }
    desc = tailor.tuning.wait(tailor.tuning.create(child)["HyperParameterTuningJobName"], timeout=60)
    assert desc["HyperParameterTuningJobStatus"] == "Completed", desc.get("FailureReason")
    everything = _trials(tailor, "parent") + _trials(tailor, "child")
    overall = max(everything, key=lambda t: t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    assert desc["OverallBestTrainingJob"]["TrainingJobName"] == overall["TrainingJobName"]
    assert desc["BestTrainingJob"]["TrainingJobName"] == _trials(tailor, "child")[0]["TrainingJobName"]


@pytest.mark.slow
def test_a_restarted_server_resumes_the_tuning_job(fast_each_db: Settings) -> None:
    fast = fast_each_db
    spec = fake_tuning("resume", max_jobs=3, parallel=1, static={"epochs": "30", "sleep": "1"})
    first = Tailor.open(fast, serve=True)
    first.tuning.create(spec)
    wait_for(lambda: [t for t in _trials(first, "resume") if _training(first, t)])
    first.close()  # a clean server shutdown: the trial is stopped, the tuning job left for the next start
    with Tailor.open(fast) as client:  # an in-process client meanwhile leaves it to the server
        assert client.tuning.describe("resume")["HyperParameterTuningJobStatus"] == "InProgress"
        assert len(_trials(client, "resume")) == 1
    second = Tailor.open(fast, serve=True)
    try:
        wait_for(lambda: len(_trials(second, "resume")) == 2, timeout=20)
        desc = second.tuning.describe("resume")
        assert desc["HyperParameterTuningJobStatus"] == "InProgress"
        assert desc["TrainingJobStatusCounters"]["RetryableError"] == 1  # another trial takes its place
        interrupted = _trials(second, "resume")[0]
        assert "restarted" in interrupted["FailureReason"]
        second.tuning.stop("resume")
        assert second.tuning.wait("resume", timeout=30)["HyperParameterTuningJobStatus"] == "Stopped"
    finally:
        second.close()
    # an in-process client (no server) ends its tuning jobs Stopped when it closes, as it does its training jobs
    third = Tailor.open(fast)
    try:
        third.tuning.create(fake_tuning("orphan", max_jobs=1, static={"epochs": "30", "sleep": "1"}))
    finally:
        third.close()
    fourth = Tailor.open(fast)
    try:
        desc = fourth.tuning.describe("orphan")
        assert desc["HyperParameterTuningJobStatus"] == "Stopped"
        assert desc["FailureReason"] == "Tailor shut down while the tuning job ran"
    finally:
        fourth.close()
