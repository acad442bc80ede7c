"""The server is closed by default: SigV4 / bearer authentication, IAM-style policies, and the attacks to refuse.

Everything goes through a real server on loopback and plain boto3 (or hand-made HTTP requests for the attacks),
and every refusal is checked for AWS's error shape, for leaving no trace, and for not echoing a secret.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from unittest import mock

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError

from tailor.auth.keys import Credentials, KeyStore
from tailor.settings import Settings

pytestmark = pytest.mark.slow  # a server per test group

TARGET = "SageMaker."


def sagemaker(url: str, creds: Credentials, region: str = "us-east-1") -> Any:
    return boto3.client(
        "sagemaker",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        config=Config(retries={"max_attempts": 1}),
    )


def signed(url: str, creds: Credentials, op: str, body: dict | bytes, when: dt.datetime | None = None) -> AWSRequest:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = AWSRequest(
        method="POST",
        url=url + "/",
        data=data,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET + op},
    )
    when = when or dt.datetime.now(dt.UTC)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)):
        SigV4Auth(BotoCredentials(creds.access_key_id, creds.secret_access_key), "sagemaker", "us-east-1").add_auth(req)
    return req


def send(req: AWSRequest, body: bytes | None = None) -> httpx.Response:
    return httpx.post(req.url, content=req.body if body is None else body, headers=dict(req.headers.items()))


def assert_aws_error(resp: httpx.Response, status: int, code: str, secret: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["__type"] == code and isinstance(body["message"], str) and body["message"]
    assert resp.headers["x-amzn-ErrorType"] == code
    if secret:
        assert secret not in resp.text
    return body


def client_error(call: Any, **kwargs: Any) -> dict:
    with pytest.raises(ClientError) as err:
        call(**kwargs)
    return err.value.response


def job_count(url: str, creds: Credentials) -> int:
    return len(sagemaker(url, creds).list_training_jobs()["TrainingJobSummaries"])


def new_key(settings: Settings, name: str, policy: dict | None) -> Credentials:
    new = KeyStore(settings).create(name, policy)
    return Credentials(new.info.access_key_id, new.secret_access_key)


def allow(action: str, resource: str, effect: str = "Allow") -> dict:
    return {"Effect": effect, "Action": action, "Resource": resource}


def policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def endpoint_arn(settings: Settings, name: str) -> str:
    return f"arn:aws:sagemaker:{settings.region}:{settings.account_id}:endpoint/{name}"


def test_admin_key_works_through_plain_boto3(api_server: str, admin_credentials: Credentials) -> None:
    out = sagemaker(api_server, admin_credentials).list_training_jobs()
    assert out["TrainingJobSummaries"] == []
    resp = client_error(sagemaker(api_server, admin_credentials).describe_training_job, TrainingJobName="nope")
    assert resp["Error"]["Code"] == "ValidationException"
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_unsigned_request_is_refused(api_server: str) -> None:
    resp = httpx.post(
        api_server + "/",
        content=b"{}",
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "SageMaker.ListTrainingJobs"},
    )
    assert_aws_error(resp, 403, "MissingAuthenticationTokenException")
    rest = httpx.get(api_server + "/api/v1/training-jobs")
    assert rest.status_code == 403
    assert rest.headers["x-amzn-ErrorType"] == rest.json()["error"]["code"] == "MissingAuthenticationTokenException"
    assert httpx.get(api_server + "/healthz").status_code == 200  # health stays open


def test_wrong_secret(api_server: str, admin_credentials: Credentials) -> None:
    bad = Credentials(admin_credentials.access_key_id, admin_credentials.secret_access_key[::-1])
    resp = client_error(sagemaker(api_server, bad).list_training_jobs)
    assert resp["Error"]["Code"] == "InvalidSignatureException"
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert admin_credentials.secret_access_key not in json.dumps(resp, default=str)


def test_unknown_key(api_server: str) -> None:
    resp = client_error(sagemaker(api_server, Credentials("TKIANOSUCHKEY0000000", "x" * 40)).list_training_jobs)
    assert resp["Error"]["Code"] == "UnrecognizedClientException"


def test_wrong_region_is_refused(api_server: str, admin_credentials: Credentials) -> None:
    resp = client_error(sagemaker(api_server, admin_credentials, region="eu-west-1").list_training_jobs)
    assert resp["Error"]["Code"] == "InvalidSignatureException"


CREATE_JOB = {
    "TrainingJobName": "attack-job",
    "AlgorithmSpecification": {
        "TrainingImage": "811284229777.dkr.ecr.us-east-1.amazonaws.com/image-classification:1",
        "TrainingInputMode": "File",
    },
    "RoleArn": "arn:aws:iam::000000000000:role/tailor",
    "InputDataConfig": [
        {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/train"}}}
    ],
    "OutputDataConfig": {"S3OutputPath": "s3://data/output"},
    "ResourceConfig": {"InstanceType": "ml.m4.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
    "StoppingCondition": {"MaxRuntimeInSeconds": 60},
}


def test_tampered_body_after_signing(api_server: str, admin_credentials: Credentials) -> None:
    req = signed(api_server, admin_credentials, "CreateTrainingJob", {**CREATE_JOB, "TrainingJobName": "benign"})
    evil = json.dumps(CREATE_JOB).encode()
    assert_aws_error(send(req, evil), 403, "InvalidSignatureException", admin_credentials.secret_access_key)
    assert job_count(api_server, admin_credentials) == 0


def test_tampered_header_after_signing(api_server: str, admin_credentials: Credentials) -> None:
    req = signed(api_server, admin_credentials, "ListTrainingJobs", {})
    req.headers.replace_header("X-Amz-Target", "SageMaker.CreateTrainingJob")
    assert_aws_error(send(req), 403, "InvalidSignatureException")


def test_replay_older_than_five_minutes(api_server: str, admin_credentials: Credentials) -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)
    req = signed(api_server, admin_credentials, "CreateTrainingJob", CREATE_JOB, when=old)
    body = assert_aws_error(send(req), 403, "InvalidSignatureException")
    assert "Signature expired" in body["message"]
    assert job_count(api_server, admin_credentials) == 0


def test_disabled_key(api_server: str, settings: Settings, admin_credentials: Credentials) -> None:
    creds = new_key(settings, "ops", policy(allow("sagemaker:*", "*")))
    assert job_count(api_server, creds) == 0
    KeyStore(settings).set_enabled("ops", False)
    resp = client_error(sagemaker(api_server, creds).list_training_jobs)
    assert resp["Error"]["Code"] == "UnrecognizedClientException"
    KeyStore(settings).delete("ops")
    resp = client_error(sagemaker(api_server, creds).list_training_jobs)
    assert resp["Error"]["Code"] == "UnrecognizedClientException"


def test_key_without_policy_is_denied(api_server: str, settings: Settings) -> None:
    creds = new_key(settings, "nobody", None)
    resp = client_error(sagemaker(api_server, creds).list_training_jobs)
    assert resp["Error"]["Code"] == "AccessDeniedException"
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "user/nobody" in resp["Error"]["Message"]


def test_policy_for_another_endpoint(api_server: str, settings: Settings) -> None:
    creds = new_key(
        settings,
        "viewer",
        policy(allow(["sagemaker:DescribeEndpoint", "sagemaker:InvokeEndpoint"], endpoint_arn(settings, "mine"))),
    )
    resp = client_error(sagemaker(api_server, creds).describe_endpoint, EndpointName="theirs")
    assert resp["Error"]["Code"] == "AccessDeniedException"
    assert endpoint_arn(settings, "theirs") in resp["Error"]["Message"]


def test_deny_overrides_allow(api_server: str, settings: Settings) -> None:
    creds = new_key(
        settings,
        "limited",
        policy(
            allow("sagemaker:*", "*"),
            allow("sagemaker:CreateTrainingJob", "arn:aws:sagemaker:*:*:training-job/*", effect="Deny"),
        ),
    )
    assert job_count(api_server, creds) == 0  # the Allow holds elsewhere
    resp = client_error(sagemaker(api_server, creds).create_training_job, **CREATE_JOB)
    assert resp["Error"]["Code"] == "AccessDeniedException"
    assert "explicit deny" in resp["Error"]["Message"]
    assert job_count(api_server, creds) == 0


@pytest.mark.parametrize(
    "uri",
    [
        "s3://data/../other-bucket/train",
        "s3://data/train/../../other-bucket/x",
        "s3://data/%2e%2e/other-bucket/x",
        "s3://data/train%2f..%2f..%2fx",
        "s3://data//etc/passwd",
        "/etc/passwd",
        "file:///etc/passwd",
        "http://169.254.169.254/latest/meta-data",
        "s3://../etc",
    ],
)
def test_uris_that_leave_storage_are_refused(api_server: str, admin_credentials: Credentials, uri: str) -> None:
    spec = json.loads(json.dumps(CREATE_JOB))
    spec["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = uri
    resp = client_error(sagemaker(api_server, admin_credentials).create_training_job, **spec)
    assert resp["Error"]["Code"] == "ValidationException"
    spec = json.loads(json.dumps(CREATE_JOB))
    spec["OutputDataConfig"]["S3OutputPath"] = uri
    resp = client_error(sagemaker(api_server, admin_credentials).create_training_job, **spec)
    assert resp["Error"]["Code"] == "ValidationException"
    assert job_count(api_server, admin_credentials) == 0


@pytest.mark.parametrize("name", ["..", "a/../b", "%2e%2e", "/etc/passwd", "a" * 64, ""])
def test_bad_names_are_refused(api_server: str, admin_credentials: Credentials, name: str) -> None:
    req = signed(api_server, admin_credentials, "DescribeTrainingJob", {"TrainingJobName": name})
    assert_aws_error(send(req), 400, "ValidationException")
    req = signed(api_server, admin_credentials, "CreateTrainingJob", {**CREATE_JOB, "TrainingJobName": name})
    assert_aws_error(send(req), 400, "ValidationException")
    assert job_count(api_server, admin_credentials) == 0


def test_oversized_bodies(api_server: str, admin_credentials: Credentials) -> None:
    big = {**CREATE_JOB, "HyperParameters": {f"k{i}": "x" * 2000 for i in range(600)}}
    req = signed(api_server, admin_credentials, "CreateTrainingJob", big)
    assert_aws_error(send(req), 413, "ValidationException")
    huge = signed(api_server, admin_credentials, "CreateTrainingJob", b"{" + b" " * (8 << 20) + b"}")
    # The control plane's 1 MiB limit refuses it before authentication reads it, with the control plane's code.
    assert_aws_error(send(huge), 413, "ValidationException")
    assert job_count(api_server, admin_credentials) == 0


def test_unknown_operation_and_bad_json(api_server: str, admin_credentials: Credentials) -> None:
    assert_aws_error(
        send(signed(api_server, admin_credentials, "DeleteEverything", {})), 400, "UnknownOperationException"
    )
    assert_aws_error(send(signed(api_server, admin_credentials, "ListModels", b"[1,")), 400, "SerializationException")


def test_bearer_tokens_issue_use_and_revoke(
    api_server: str, settings: Settings, admin_credentials: Credentials
) -> None:
    req = AWSRequest(method="POST", url=api_server + "/auth/tokens", data=b"")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=now):
        SigV4Auth(
            BotoCredentials(admin_credentials.access_key_id, admin_credentials.secret_access_key),
            "sagemaker",
            "us-east-1",
        ).add_auth(req)
    issued = httpx.post(req.url, headers=dict(req.headers.items()))
    assert issued.status_code == 200, issued.text
    token = issued.json()["Token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(api_server + "/api/v1/training-jobs", headers=auth).status_code == 200
    listed = httpx.post(
        api_server + "/",
        content=b"{}",
        headers={**auth, "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "SageMaker.ListTrainingJobs"},
    )
    assert listed.status_code == 200 and listed.json() == {"TrainingJobSummaries": []}
    assert httpx.request("DELETE", api_server + "/auth/tokens", headers=auth).json() == {"Revoked": True}
    refused = httpx.post(
        api_server + "/",
        content=b"{}",
        headers={**auth, "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "SageMaker.ListTrainingJobs"},
    )
    assert_aws_error(refused, 403, "UnrecognizedClientException", token)
    assert (
        httpx.get(api_server + "/api/v1/training-jobs", headers={"Authorization": "Bearer forged"}).status_code == 403
    )


def test_tailor_client_signs_its_requests(api_server: str, settings: Settings, admin_credentials: Credentials) -> None:
    from tailor.client import Client

    with Client(api_server, settings=settings) as client:
        assert client._request("GET", "/api/v1/training-jobs")["TrainingJobSummaries"] == []
