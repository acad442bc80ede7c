"""Plain boto3 (``sagemaker`` client, botocore's shapes and waiter) drives a transform job on a real server on
loopback, closed by default: an admin key runs it, a key whose policy does not allow it is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import ClientError, WaiterError

from tailor.auth.keys import Credentials
from tailor.settings import Settings
from tests.api.test_sagemaker_auth import allow, new_key, policy, sagemaker
from tests.transform.conftest import put_images, request

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]  # model worker processes


def test_boto3_runs_a_transform_job_to_completion_with_the_waiter(
    api_server: str, admin_credentials: Credentials, settings: Settings, model_tar: Path
) -> None:
    sm = sagemaker(api_server, admin_credentials)
    (settings.buckets_dir / "models").mkdir(parents=True)
    (settings.buckets_dir / "models" / "rn20.tar.gz").write_bytes(model_tar.read_bytes())
    sm.create_model(
        ModelName="rn20",
        PrimaryContainer={"Image": "tailor/image-classification", "ModelDataUrl": "s3://models/rn20.tar.gz"},
        ExecutionRoleArn="arn:aws:iam::000000000000:role/x",
    )
    keys = put_images(settings, "imgs", per_class=5)
    arn = sm.create_transform_job(**request("bt-1", "s3://data/imgs/", "s3://out/bt", MaxPayloadInMB=1))[
        "TransformJobArn"
    ]
    assert arn == f"arn:aws:sagemaker:{settings.region}:{settings.account_id}:transform-job/bt-1"
    sm.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName="bt-1", WaiterConfig={"Delay": 1, "MaxAttempts": 90}
    )
    desc = sm.describe_transform_job(TransformJobName="bt-1")
    assert desc["TransformJobStatus"] == "Completed" and desc["MaxPayloadInMB"] == 1
    assert desc["TransformInput"]["SplitType"] == "None" and desc["TransformResources"]["InstanceCount"] == 1
    assert desc["TransformEndTime"] >= desc["TransformStartTime"] >= desc["CreationTime"]
    assert "TransformProgress" not in desc  # Tailor's extension member: boto3 reads only botocore's shape
    outs = sorted(
        p.relative_to(settings.buckets_dir / "out" / "bt").as_posix()
        for p in (settings.buckets_dir / "out" / "bt").rglob("*.out")
    )
    assert outs == sorted(f"{k}.out" for k in keys)
    page = sm.get_paginator("list_transform_jobs").paginate(PaginationConfig={"PageSize": 1})
    assert [j["TransformJobName"] for p in page for j in p["TransformJobSummaries"]] == ["bt-1"]
    with pytest.raises(ClientError) as err:  # the name is taken
        sm.create_transform_job(**request("bt-1", "s3://data/imgs/", "s3://out/bt"))
    assert err.value.response["Error"]["Code"] == "ResourceInUse"
    with pytest.raises(ClientError) as err:  # a finished job cannot be stopped
        sm.stop_transform_job(TransformJobName="bt-1")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as err:
        sm.describe_transform_job(TransformJobName="nope")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as err:  # a remote caller names no local path
        sm.create_transform_job(**request("bt-2", "file:///etc/", "s3://out/x"))
    assert "must be an s3://bucket/key URI" in err.value.response["Error"]["Message"]

    # A key allowed to describe only its own prefix of transform jobs: everything else is refused, nothing made.
    region_account = f"{settings.region}:{settings.account_id}"
    reader = sagemaker(
        api_server,
        new_key(
            settings,
            "reader",
            policy(allow("sagemaker:DescribeTransformJob", f"arn:aws:sagemaker:{region_account}:transform-job/team-*")),
        ),
    )
    for call, kwargs in (
        (reader.create_transform_job, request("team-1", "s3://data/imgs/", "s3://out/team")),
        (reader.describe_transform_job, {"TransformJobName": "bt-1"}),
        (reader.stop_transform_job, {"TransformJobName": "bt-1"}),
        (reader.list_transform_jobs, {}),
    ):
        with pytest.raises(ClientError) as err:
            call(**kwargs)
        assert err.value.response["Error"]["Code"] == "AccessDeniedException", call
    with pytest.raises(WaiterError):  # the waiter stops at the refusal instead of polling on
        reader.get_waiter("transform_job_completed_or_stopped").wait(
            TransformJobName="bt-1", WaiterConfig={"Delay": 1, "MaxAttempts": 2}
        )
    assert not (settings.buckets_dir / "out" / "team").exists()
    assert [j["TransformJobName"] for j in sm.list_transform_jobs()["TransformJobSummaries"]] == ["bt-1"]
