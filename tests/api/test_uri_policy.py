"""One URI policy for every remote surface: REST, SageMaker's JSON protocol and the SDK over HTTP accept
``s3://bucket/key`` only, wherever a request names an object; the in-process CLI keeps local paths.

The attack this closes: a key allowed CreateTrainingJob named the server's ``auth/`` directory as a channel over
REST and got ``master.key`` staged into its job; CreateModel read ``file:///…``, absolute and ``../..`` paths.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from click.testing import CliRunner

from tailor import Client
from tailor.cli.main import cli
from tailor.errors import ValidationError
from tailor.settings import Settings
from tests.jobs.specs import fake_spec

BUILTIN = "tailor/image-classification"
ROLE = "arn:aws:iam::000000000000:role/tailor"
JOB: dict[str, Any] = {
    "TrainingJobName": "uri-attack",
    "AlgorithmSpecification": {"TrainingImage": BUILTIN, "TrainingInputMode": "File"},
    "RoleArn": ROLE,
    "InputDataConfig": [
        {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/t"}}}
    ],
    "OutputDataConfig": {"S3OutputPath": "s3://data/output"},
    "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
    "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    "HyperParameters": {"num_classes": "10", "num_training_samples": "100", "image_shape": "1,28,28"},
}


def refused_forms(home: Path) -> list[str]:
    """Every form of "not an object in a bucket" the review tried, and the encodings around the checks."""
    return [
        str(home / "auth"),  # the server's secrets, as an absolute path
        (home / "auth" / "master.key").as_uri(),  # file://
        "../../auth",  # relative traversal
        "auth/master.key",  # a bare relative path
        "s3://data/../../auth",
        "s3://data/%2e%2e/%2e%2e/auth",  # percent-encoded traversal
        "s3://data/train%2f..%2f..%2fx",
        "s3://data/./train",
        "s3://data//etc/passwd",  # absolute key
        "s3://data/a\\..\\b",
        "http://169.254.169.254/latest/meta-data",
    ]


# Where a URI sits in each request: (label, setter on a copy of the request).
JOB_MEMBERS: list[tuple[str, Callable[[dict, str], None]]] = [
    ("channel", lambda s, u: s["InputDataConfig"][0]["DataSource"]["S3DataSource"].update(S3Uri=u)),
    (
        "model channel",
        lambda s, u: s["InputDataConfig"].append(
            {"ChannelName": "model", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": u}}}
        ),
    ),
    ("output", lambda s, u: s["OutputDataConfig"].update(S3OutputPath=u)),
    ("checkpoint", lambda s, u: s.update(CheckpointConfig={"S3Uri": u})),
]
MODEL_MEMBERS: list[tuple[str, Callable[[str], dict]]] = [
    ("primary", lambda u: {"ModelName": "uri-attack", "PrimaryContainer": {"Image": BUILTIN, "ModelDataUrl": u}}),
    ("containers", lambda u: {"ModelName": "uri-attack", "Containers": [{"Image": BUILTIN, "ModelDataUrl": u}]}),
]
# CreateModel as boto3 sends it (ExecutionRoleArn is required by older botocore models).
BOTO_MODEL_MEMBERS: list[tuple[str, Callable[[str], dict]]] = [
    (label, lambda u, body=body: {**body(u), "ExecutionRoleArn": ROLE}) for label, body in MODEL_MEMBERS
]


def job_with(where: Callable[[dict, str], None], uri: str) -> dict:
    spec = copy.deepcopy(JOB)
    where(spec, uri)
    return spec


def rest(client: Client, method: str, path: str, body: dict) -> httpx.Response:
    """A REST request signed as the SDK signs it (servers are closed by default)."""
    return client._http.send(client._signed(client._http.build_request(method, path, json=body)))


def assert_refused(resp: httpx.Response, what: str) -> None:
    assert resp.status_code == 400, (what, resp.text)
    error = resp.json()["error"]
    assert error["code"] == "ValidationException", (what, error)
    assert "must be an s3://bucket/key URI" in error["message"] or "not accepted" in error["message"], (what, error)


def assert_nothing_made(settings: Settings, client: Client) -> None:
    assert client.list_training_jobs()["TrainingJobSummaries"] == []
    assert client.list_models()["Models"] == []
    assert not any(settings.jobs_dir.iterdir())
    assert not any(settings.models_dir.iterdir())


def test_rest_refuses_every_local_or_escaping_uri(settings: Settings, api_server: str) -> None:
    forms = refused_forms(settings.home)
    assert (settings.home / "auth" / "master.key").is_file()  # what the attack was after
    with Client(url=api_server) as client:
        for uri in forms:
            for label, where in JOB_MEMBERS:
                assert_refused(rest(client, "POST", "/api/v1/training-jobs", job_with(where, uri)), f"{label} {uri}")
            for label, body in MODEL_MEMBERS:
                assert_refused(rest(client, "POST", "/api/v1/models", body(uri)), f"{label} {uri}")
        assert_nothing_made(settings, client)


def test_sdk_over_http_gets_a_validation_error(settings: Settings, api_server: str) -> None:
    with Client(url=api_server) as client:
        with pytest.raises(ValidationError, match="must be an s3://bucket/key URI"):
            client.create_training_job(job_with(JOB_MEMBERS[0][1], str(settings.home / "auth")))
        with pytest.raises(ValidationError, match="must be an s3://bucket/key URI"):
            client.create_model(MODEL_MEMBERS[0][1]("file:///etc/passwd"))
        with pytest.raises(ValidationError, match="not accepted"):
            client.create_model(MODEL_MEMBERS[0][1]("s3://models/../../auth/master.key"))
        assert_nothing_made(settings, client)


def test_sagemaker_protocol_refuses_the_same_forms(settings: Settings, api_server: str, admin_credentials) -> None:
    sm = boto3.client(
        "sagemaker",
        endpoint_url=api_server,
        region_name=settings.region,
        aws_access_key_id=admin_credentials.access_key_id,
        aws_secret_access_key=admin_credentials.secret_access_key,
        config=Config(retries={"max_attempts": 1}),
    )
    for uri in refused_forms(settings.home):
        for label, where in JOB_MEMBERS:
            with pytest.raises(ClientError) as err:
                sm.create_training_job(**job_with(where, uri))
            assert err.value.response["Error"]["Code"] == "ValidationException", (label, uri)
        for label, body in BOTO_MODEL_MEMBERS:
            with pytest.raises(ClientError) as err:
                sm.create_model(**body(uri))
            assert err.value.response["Error"]["Code"] == "ValidationException", (label, uri)
    with Client(url=api_server) as client:
        assert_nothing_made(settings, client)


def test_the_in_process_cli_still_reads_local_paths(settings: Settings, tmp_path: Path) -> None:
    """The machine's own user, in-process, names local files: that is not a remote surface."""
    data = tmp_path / "local-train"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("0 1\n")
    (data / "sub" / "b.txt").write_text("2 3\n")
    spec = fake_spec("local-ok")
    spec["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = str(data)
    spec["OutputDataConfig"]["S3OutputPath"] = (tmp_path / "out").as_uri()
    spec_file = tmp_path / "job.json"
    spec_file.write_text(json.dumps(spec))
    result = CliRunner().invoke(cli, ["train", "--spec", str(spec_file), "--follow", "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "train files: ['a.txt', 'b.txt']" in result.output
    assert (tmp_path / "out" / "local-ok" / "output" / "model.tar.gz").is_file()
