"""The CLI against a server: TAILOR_URL instead of a repeated --url, and a missing key explained."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tailor import Client
from tailor.cli.main import cli
from tailor.client import BUILTIN_ALGORITHM
from tailor.settings import Settings
from tests.jobs.specs import TRAIN_URI, fake_spec, put_train_data


def test_tailor_url_sends_commands_to_that_server(
    settings: Settings, api_server: str, admin_credentials: object, tmp_path: Path
) -> None:
    put_train_data(settings)
    with Client(url=api_server) as client:
        client.create_training_job(fake_spec("on-the-server")).wait(timeout=60)
    # Another home (no database of its own): the listing can only come from the server TAILOR_URL names.
    env = {
        "TAILOR_HOME": str(tmp_path / "elsewhere"),
        "TAILOR_URL": api_server,
        "TAILOR_ACCESS_KEY_ID": admin_credentials.access_key_id,
        "TAILOR_SECRET_ACCESS_KEY": admin_credentials.secret_access_key,
    }
    res = CliRunner().invoke(cli, ["jobs", "list"], env=env)
    assert res.exit_code == 0, (res.output, res.exception)
    assert "on-the-server" in res.stdout and "Completed" in res.stdout


def test_no_access_key_names_the_file_looked_for_and_server_init(
    settings: Settings, api_server: str, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-credentials"
    res = CliRunner().invoke(cli, ["jobs", "list", "--url", api_server], env={"TAILOR_CREDENTIALS_FILE": str(missing)})
    assert res.exit_code != 0
    message = str(res.exception)
    assert (
        message.startswith("Missing Authentication Token")
        and str(missing) in message
        and "tailor server init" in message
    ), message


def test_sdk_runs_the_built_in_algorithm_when_none_is_named(settings: Settings, api_server: str) -> None:
    put_train_data(settings)  # not images: the job fails in the algorithm, after the request was accepted
    with Client(url=api_server) as client:
        job = client.create_training_job(
            TrainingJobName="sdk-default",
            HyperParameters={"num_classes": "2", "num_training_samples": "2", "image_shape": "1,28,28"},
            InputDataConfig=[{"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": TRAIN_URI}}}],
            OutputDataConfig={"S3OutputPath": "s3://out/jobs"},
        )
        desc = job.describe()
        assert desc["AlgorithmSpecification"]["TrainingImage"] == BUILTIN_ALGORITHM["TrainingImage"]
        assert desc["HyperParameters"]["architecture"] == "fast"  # Tailor's defaults, as README says
        job.stop()
        job.wait(timeout=60)
