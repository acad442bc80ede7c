"""Tuning jobs over a real server on loopback: the SDK over REST, plain boto3 reading SageMaker's shapes, and
policies scoped to hyper-parameter-tuning-job ARNs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tailor import Client
from tailor.auth.keys import Credentials, KeyStore
from tailor.settings import Settings
from tests.conftest import running_app
from tests.jobs.specs import put_train_data
from tests.tuning.specs import fake_tuning

pytestmark = pytest.mark.slow  # a server and training jobs

BUILTIN_IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/image-classification:1"


@pytest.fixture
def server(settings: Settings, admin_credentials: Credentials) -> Iterator[str]:
    put_train_data(settings)
    with running_app(settings) as url:
        yield url


def _sm(url: str, creds: Credentials) -> Any:
    return boto3.client(
        "sagemaker",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        config=Config(retries={"max_attempts": 1}),
    )


def test_sdk_over_rest_and_boto3_read_the_same_tuning_job(
    server: str, settings: Settings, admin_credentials: Credentials
) -> None:
    with Client(url=server, settings=settings) as client:
        created = client.create_hyper_parameter_tuning_job(fake_tuning("over-http", max_jobs=2, parallel=2))
        assert created["HyperParameterTuningJobStatus"] == "InProgress"
        desc = client.wait_hyper_parameter_tuning_job("over-http", timeout=60, poll=0.5)
    assert desc["HyperParameterTuningJobStatus"] == "Completed", desc.get("FailureReason")
    sm = _sm(server, admin_credentials)
    boto = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="over-http")
    assert boto["BestTrainingJob"]["TrainingJobName"] == desc["BestTrainingJob"]["TrainingJobName"]
    assert boto["TrainingJobStatusCounters"]["Completed"] == 2
    assert boto["HyperParameterTuningEndTime"] >= boto["CreationTime"]
    trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="over-http", SortBy="FinalObjectiveMetricValue", SortOrder="Descending"
    )["TrainingJobSummaries"]
    assert trials[0]["TrainingJobName"] == boto["BestTrainingJob"]["TrainingJobName"]
    job = sm.describe_training_job(TrainingJobName=trials[1]["TrainingJobName"])
    assert job["TuningJobArn"] == boto["HyperParameterTuningJobArn"]
    summaries = sm.list_hyper_parameter_tuning_jobs(StatusEquals="Completed")["HyperParameterTuningJobSummaries"]
    assert [s["HyperParameterTuningJobName"] for s in summaries] == ["over-http"]
    with pytest.raises(ClientError) as err:
        sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="missing")
    assert err.value.response["Error"]["Code"] == "ValidationException"  # as SageMaker answers a missing one
    with pytest.raises(ClientError) as err:
        sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="over-http")
    assert "is Completed" in err.value.response["Error"]["Message"]


def test_policies_scope_tuning_jobs_by_arn(server: str, settings: Settings) -> None:
    account = settings.account_id
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sagemaker:DescribeHyperParameterTuningJob",
                "Resource": f"arn:aws:sagemaker:us-east-1:{account}:hyper-parameter-tuning-job/team-*",
            },
            {"Effect": "Allow", "Action": "sagemaker:ListHyperParameterTuningJobs", "Resource": "*"},
        ],
    }
    new = KeyStore(settings).create("tuner", policy)
    sm = _sm(server, Credentials(new.info.access_key_id, new.secret_access_key))
    definition = {
        "AlgorithmSpecification": {"TrainingImage": BUILTIN_IMAGE, "TrainingInputMode": "File"},
        "RoleArn": f"arn:aws:iam::{account}:role/SageMakerRole",
        "OutputDataConfig": {"S3OutputPath": "s3://out/tuning"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    config = {
        "Strategy": "Random",
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 1},
        "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:accuracy"},
    }

    def code(call: Any, **kwargs: Any) -> str:
        with pytest.raises(ClientError) as err:
            call(**kwargs)
        return err.value.response["Error"]["Code"]

    create = sm.create_hyper_parameter_tuning_job
    kwargs = {"HyperParameterTuningJobConfig": config, "TrainingJobDefinition": definition}
    assert code(create, HyperParameterTuningJobName="team-a", **kwargs) == "AccessDeniedException"
    assert code(sm.describe_hyper_parameter_tuning_job, HyperParameterTuningJobName="other") == "AccessDeniedException"
    assert code(sm.stop_hyper_parameter_tuning_job, HyperParameterTuningJobName="team-a") == "AccessDeniedException"
    trials = sm.list_training_jobs_for_hyper_parameter_tuning_job
    assert code(trials, HyperParameterTuningJobName="team-a") == "AccessDeniedException"
    # allowed on team-*: the request goes through and finds nothing
    assert code(sm.describe_hyper_parameter_tuning_job, HyperParameterTuningJobName="team-a") == "ValidationException"
    assert sm.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"] == []
    # REST refuses the same way, before reading the body's content
    token = KeyStore(settings).issue_token(new.info.access_key_id)[0]
    resp = httpx.post(
        f"{server}/api/v1/tuning-jobs",
        json={"HyperParameterTuningJobName": "team-b"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 403 and "sagemaker:CreateHyperParameterTuningJob" in resp.text
    assert httpx.get(f"{server}/api/v1/tuning-jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
