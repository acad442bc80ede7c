"""Own training code over HTTP: off unless the server enables it and the caller holds tailor:RunCustomCode; with
both, it runs as its own uid and cannot read the server's master key, database or another job's files.

A real `tailor server` on loopback (run as root here, so the uid drop is real), plain boto3 for the SageMaker
protocol and Tailor's SDK for REST, each signing with a narrow key of its own.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tailor.client import Client
from tailor.errors import AuthError, TailorError, ValidationError
from tailor.settings import Settings
from tests.api.conftest import ServerProcess
from tests.api.test_sagemaker_auth import new_key, sagemaker
from tests.jobs.specs import wait_for

pytestmark = pytest.mark.slow  # sandboxed training jobs behind a server

ARN = "arn:aws:sagemaker:us-east-1:000000000000:training-job/mine-*"
NARROW = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob"], "Resource": ARN}
    ],
}
# Broad SageMaker rights and look-alike wildcards: none of them may grant tailor:RunCustomCode.
BROAD = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["sagemaker:*", "*:*", "t*:*"], "Resource": "*"}],
}
GRANTED = {
    "Version": "2012-10-17",
    "Statement": [*NARROW["Statement"], {"Effect": "Allow", "Action": "tailor:RunCustomCode", "Resource": ARN}],
}
ATTACK = ["id; base64 $TAILOR_HOME/auth/master.key"]


def shell_spec(name: str, script: list[str]) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "ContainerEntrypoint": ["/bin/sh", "-c"],
            "ContainerArguments": script,
            "TrainingInputMode": "File",
        },
        "RoleArn": "arn:aws:iam::000000000000:role/SageMakerRole",
        "OutputDataConfig": {"S3OutputPath": "s3://out/jobs"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }


def rest(server: ServerProcess, settings: Settings, creds: Any) -> Client:
    narrow = settings.model_copy(
        update={"access_key_id": creds.access_key_id, "secret_access_key": creds.secret_access_key}
    )
    return Client(server.url, settings=narrow)


def refused_both_ways(server: ServerProcess, settings: Settings, creds: Any, name: str) -> tuple[dict, Exception]:
    """Submit the attack through the SageMaker protocol (boto3) and REST (SDK); both must refuse it."""
    with pytest.raises(ClientError) as boto_err:
        sagemaker(server.url, creds).create_training_job(**shell_spec(name, ATTACK))
    with rest(server, settings, creds) as client, pytest.raises(TailorError) as rest_err:
        client.create_training_job(shell_spec(name + "-rest", ATTACK))
    with Client(server.url, settings=settings) as admin:  # nothing was created by either refusal
        assert admin.list_training_jobs(NameContains=name)["TrainingJobSummaries"] == []
    return boto_err.value.response, rest_err.value


def test_own_code_is_off_by_default(
    server_factory: Callable[..., ServerProcess], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAILOR_ALLOW_OWN_CODE", "0")
    server = server_factory()
    resp, err = refused_both_ways(server, settings, new_key(settings, "mine", GRANTED), "mine-off")
    assert resp["Error"]["Code"] == "ValidationException" and isinstance(err, ValidationError)
    for message in (resp["Error"]["Message"], str(err)):
        assert "own training code is disabled on this server" in message and "allow_own_code" in message


@pytest.mark.parametrize("policy", [NARROW, BROAD], ids=["narrow", "sagemaker-star"])
def test_own_code_needs_tailor_run_custom_code(
    server_factory: Callable[..., ServerProcess], settings: Settings, monkeypatch: pytest.MonkeyPatch, policy: dict
) -> None:
    monkeypatch.setenv("TAILOR_ALLOW_OWN_CODE", "1")
    server = server_factory()
    resp, err = refused_both_ways(server, settings, new_key(settings, "mine", policy), "mine-attack")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert resp["Error"]["Code"] == "AccessDeniedException"
    for message in (resp["Error"]["Message"], str(err)):
        assert "tailor:RunCustomCode" in message and "training-job/mine-attack" in message
    assert isinstance(err, AuthError)


def job_log(client: Client, name: str) -> str:
    desc = wait_for(
        lambda: (d := client.describe_training_job(name))["TrainingJobStatus"] in ("Completed", "Failed") and d,
        timeout=60,
    )
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    return client._request("GET", f"/api/v1/training-jobs/{name}/logs")["Text"]


def test_granted_own_code_runs_without_the_servers_secrets(
    server_factory: Callable[..., ServerProcess], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAILOR_ALLOW_OWN_CODE", "1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "server-side-aws-secret")  # the server's env, not the job's
    server = server_factory()
    home = settings.home
    master = (home / "auth" / "master.key").read_bytes()
    creds = new_key(settings, "mine", GRANTED)
    boto = sagemaker(server.url, creds)
    with rest(server, settings, creds) as client:
        # The exact attack: it runs now, but as an unprivileged uid with no TAILOR_HOME to expand.
        boto.create_training_job(**shell_spec("mine-attack", [ATTACK[0] + '; echo ok > "$SM_MODEL_DIR/m"']))
        log = job_log(client, "mine-attack")
        assert "uid=0(" not in log and "uid=" in log
        assert base64.b64encode(master).decode()[:40] not in log
        # Another job leaves a file in its dir; a later job tries the master key, the database and that file by
        # their absolute paths, and prints its identity and environment.
        client.create_training_job(
            shell_spec("mine-a", ['echo secret-of-job-a > "$SM_OUTPUT_DATA_DIR/a.txt"; echo ok > "$SM_MODEL_DIR/m"'])
        )
        job_log(client, "mine-a")
        assert (home / "jobs/mine-a/output/data/a.txt").read_text() == "secret-of-job-a\n"
        targets = [home / "auth/master.key", home / "tailor.db", home / "jobs/mine-a/output/data/a.txt"]
        probe = "".join(
            f'if cat "{t}" >/dev/null 2>&1; then echo "READ {t}"; cat "{t}"; else echo "DENIED {t}"; fi; '
            for t in targets
        )
        script = (
            f'echo "UID $(id -u)"; {probe} echo "JOBS $(ls {home}/jobs | tr "\\n" " ")"; '
            'env | sed "s/^/ENV /"; echo ok > "$SM_MODEL_DIR/m"'
        )
        boto.create_training_job(**shell_spec("mine-b", [script]))
        log = job_log(client, "mine-b")
    lines = log.splitlines()
    for t in targets:
        assert f"DENIED {t}" in lines and f"READ {t}" not in lines, log
    assert "secret-of-job-a" not in log
    assert "JOBS mine-b " in lines, log  # other jobs are not even listed
    uid = int(next(line for line in lines if line.startswith("UID "))[4:])
    assert uid >= settings.job_uid_base + 1, log
    env = dict(line[4:].split("=", 1) for line in log.splitlines() if line.startswith("ENV ") and "=" in line)
    assert {k for k in env if k.startswith("TAILOR_")} == {"TAILOR_JOB_DIR", "TAILOR_JOB_NAME"}, sorted(env)
    assert not any(k.startswith("AWS_") for k in env) and "server-side-aws-secret" not in log
    assert env["HOME"] == str(home / "jobs" / "mine-b") and env["SM_MODEL_DIR"].endswith("mine-b/model")
    # The server still reads what the job wrote, and afterwards the job's dir is its own again (0700).
    st = (home / "jobs" / "mine-b").stat()
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o700)
