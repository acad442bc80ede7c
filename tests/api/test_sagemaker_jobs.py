"""Training jobs over SageMaker's JSON protocol with plain boto3: shapes, timestamps, paginators, waiters, stop."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError

from tailor.auth.keys import Credentials
from tailor.settings import Settings
from tests.api.test_sagemaker_auth import sagemaker
from tests.jobs.specs import fake_spec as _fake_spec
from tests.jobs.specs import put_train_data, wait_for

pytestmark = pytest.mark.slow  # a server and training jobs


def fake_spec(name: str, **hp: str) -> dict:
    """The jobs tests' fake-algorithm spec plus the members boto3 requires."""
    spec = _fake_spec(name, **hp)
    spec["RoleArn"] = "arn:aws:iam::000000000000:role/tailor"
    spec["AlgorithmSpecification"]["TrainingInputMode"] = "File"
    spec["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataType"] = "S3Prefix"
    return spec


def test_create_describe_list_wait(api_server: str, settings: Settings, admin_credentials: Credentials) -> None:
    put_train_data(settings)
    sm = sagemaker(api_server, admin_credentials)
    arn = sm.create_training_job(**fake_spec("sm-fast", epochs="2"))["TrainingJobArn"]
    assert arn == f"arn:aws:sagemaker:{settings.region}:{settings.account_id}:training-job/sm-fast"
    sm.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName="sm-fast", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    job = sm.describe_training_job(TrainingJobName="sm-fast")
    assert job["TrainingJobStatus"] == "Completed" and job["TrainingJobArn"] == arn
    # Epoch-second timestamps parse into aware datetimes close to now.
    assert isinstance(job["CreationTime"], dt.datetime)
    assert abs((dt.datetime.now(dt.UTC) - job["CreationTime"]).total_seconds()) < 120
    assert job["TrainingEndTime"] >= job["CreationTime"]
    assert {m["MetricName"] for m in job["FinalMetricDataList"]} >= {"train:accuracy"}
    with pytest.raises(ClientError) as err:
        sm.create_training_job(**fake_spec("sm-fast"))
    assert err.value.response["Error"]["Code"] == "ResourceInUse"


def test_paginator_and_stop(api_server: str, settings: Settings, admin_credentials: Credentials) -> None:
    put_train_data(settings)
    sm = sagemaker(api_server, admin_credentials)
    for i in range(3):
        sm.create_training_job(**fake_spec(f"sm-page-{i}", epochs="1"))
    sm.create_training_job(**fake_spec("sm-slow", epochs="1000", sleep="0.2"))
    wait_for(lambda: sm.describe_training_job(TrainingJobName="sm-slow")["SecondaryStatus"] == "Training", 30)
    sm.stop_training_job(TrainingJobName="sm-slow")
    sm.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName="sm-slow", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    assert sm.describe_training_job(TrainingJobName="sm-slow")["TrainingJobStatus"] == "Stopped"
    pages = sm.get_paginator("list_training_jobs").paginate(PaginationConfig={"PageSize": 2})
    names = [s["TrainingJobName"] for page in pages for s in page["TrainingJobSummaries"]]
    assert sorted(names) == ["sm-page-0", "sm-page-1", "sm-page-2", "sm-slow"]
    stopped = sm.list_training_jobs(StatusEquals="Stopped")["TrainingJobSummaries"]
    assert [s["TrainingJobName"] for s in stopped] == ["sm-slow"]
    with pytest.raises(ClientError) as err:
        sm.stop_training_job(TrainingJobName="sm-missing")
    assert err.value.response["Error"]["Code"] == "ValidationException"
