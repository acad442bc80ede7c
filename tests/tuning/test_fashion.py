"""Tuning the built-in algorithm on a Fashion-MNIST subset (300 train / 100 validation images, 1 epoch of the
fast net per trial): a Random job of 2 trials through the in-process SDK and a Bayesian one of 3 (2 random, then
TPE's pick) driven by plain boto3 against a server on loopback. Each ends Completed, its best training job the
one with the best recorded objective."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from PIL import Image

from tailor import Client
from tailor.auth.keys import Credentials
from tailor.settings import Settings
from tests.algorithms.helpers import fashion_subset
from tests.conftest import running_app

pytestmark = pytest.mark.slow  # trains the built-in algorithm: 2 and 3 tiny trials

SAGEMAKER_IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/image-classification:1"
STATIC = {
    "num_classes": "10",
    "num_training_samples": "300",
    "image_shape": "1,28,28",
    "architecture": "fast",
    "epochs": "1",
    "mini_batch_size": "50",
}
RANGES = {
    "ContinuousParameterRanges": [
        {"Name": "learning_rate", "MinValue": "0.0001", "MaxValue": "0.3", "ScalingType": "Logarithmic"}
    ]
}


def _folders(root: Path, x: Any, y: Any) -> None:
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        folder = root / f"class{int(label)}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0]).save(folder / f"{i}.png")


@pytest.fixture
def fashion(settings: Settings, dataset_mirror: str) -> list[dict[str, Any]]:
    bucket = settings.buckets_dir / "data" / "fmnist"
    _folders(bucket / "train", *fashion_subset(dataset_mirror, "train", 300))
    _folders(bucket / "validation", *fashion_subset(dataset_mirror, "t10k", 100))
    return [
        {
            "ChannelName": name,
            "ContentType": "application/x-image",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://data/fmnist/{name}"}},
        }
        for name in ("train", "validation")
    ]


def _assert_best_is_best(desc: dict[str, Any], trials: list[dict[str, Any]], count: int) -> None:
    assert desc["HyperParameterTuningJobStatus"] == "Completed", desc.get("FailureReason")
    assert len(trials) == count and all(t["TrainingJobStatus"] == "Completed" for t in trials)
    values = {t["TrainingJobName"]: t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for t in trials}
    best = desc["BestTrainingJob"]
    assert values[best["TrainingJobName"]] == max(values.values())  # ties (accuracy on 100 images) may share it
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == max(values.values())


@pytest.mark.timeout(300)
def test_random_search_in_process(settings: Settings, fashion: list[dict[str, Any]]) -> None:
    t0 = time.monotonic()
    with Client(settings=settings.model_copy(update={"max_concurrent_jobs": 2})) as client:
        client.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="fm-random",
            HyperParameterTuningJobConfig={
                "Strategy": "Random",
                "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:accuracy"},
                "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 2},
                "ParameterRanges": RANGES,
                "RandomSeed": 11,
            },
            TrainingJobDefinition={
                "StaticHyperParameters": STATIC,
                "InputDataConfig": fashion,
                "OutputDataConfig": {"S3OutputPath": "s3://out/tuning"},
            },
        )
        desc = client.wait_hyper_parameter_tuning_job("fm-random", timeout=240)
        trials = client.list_training_jobs_for_hyper_parameter_tuning_job("fm-random")["TrainingJobSummaries"]
        # each trial's objective is its own final validation:accuracy
        for t in trials:
            job = client.describe_training_job(t["TrainingJobName"])
            final = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
            assert t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == final["validation:accuracy"]
            assert job["HyperParameters"]["learning_rate"] == t["TunedHyperParameters"]["learning_rate"]
    _assert_best_is_best(desc, trials, 2)
    print(f"random tuning job, 2 trials: {time.monotonic() - t0:.1f} s")


@pytest.mark.timeout(300)
def test_bayesian_search_driven_by_boto3(
    settings: Settings, admin_credentials: Credentials, fashion: list[dict[str, Any]]
) -> None:
    t0 = time.monotonic()
    with running_app(settings.model_copy(update={"max_concurrent_jobs": 2})) as url:
        sm = boto3.client(
            "sagemaker",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=admin_credentials.access_key_id,
            aws_secret_access_key=admin_credentials.secret_access_key,
            config=Config(retries={"max_attempts": 1}),
        )
        sm.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="fm-bayes",
            HyperParameterTuningJobConfig={
                "Strategy": "Bayesian",
                "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:accuracy"},
                "ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 2},
                "ParameterRanges": RANGES,
                "TrainingJobEarlyStoppingType": "Off",
            },
            TrainingJobDefinition={
                "AlgorithmSpecification": {"TrainingImage": SAGEMAKER_IMAGE, "TrainingInputMode": "File"},
                "RoleArn": f"arn:aws:iam::{settings.account_id}:role/SageMakerRole",
                "StaticHyperParameters": STATIC,
                "InputDataConfig": fashion,
                "OutputDataConfig": {"S3OutputPath": "s3://out/tuning"},
                "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
                "StoppingCondition": {"MaxRuntimeInSeconds": 600},
            },
        )
        # boto3 has no waiter for tuning jobs: poll, as AWS's own examples do
        deadline = time.monotonic() + 240
        while True:
            desc = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="fm-bayes")
            if desc["HyperParameterTuningJobStatus"] not in ("InProgress", "Stopping") or time.monotonic() > deadline:
                break
            time.sleep(1)
        trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="fm-bayes", MaxResults=100
        )["TrainingJobSummaries"]
        job = sm.describe_training_job(TrainingJobName=desc["BestTrainingJob"]["TrainingJobName"])
    _assert_best_is_best(desc, trials, 3)
    assert job["TuningJobArn"] == desc["HyperParameterTuningJobArn"]
    assert job["ModelArtifacts"]["S3ModelArtifacts"].startswith("s3://out/tuning/")
    print(f"bayesian tuning job over boto3, 3 trials: {time.monotonic() - t0:.1f} s")
