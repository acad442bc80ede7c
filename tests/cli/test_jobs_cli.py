"""`tailor train` and `tailor jobs` through the click entry point (in-process and against a server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tailor.cli.main import cli
from tailor.settings import Settings
from tests.api.conftest import ServerProcess, server, server_factory  # noqa: F401 - fixtures
from tests.jobs.specs import fake_spec, put_train_data, wait_for

pytestmark = pytest.mark.slow  # a server and training jobs (13 s set-up)


def run(*args: str) -> tuple[int, str, str, BaseException | None]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr, result.exception


def test_train_from_a_spec_file_with_flags_then_inspect_it(settings: Settings, tmp_path: Path) -> None:
    put_train_data(settings)
    spec_file = tmp_path / "job.json"
    spec_file.write_text(json.dumps(fake_spec("ignored-name")))
    code, out, err, exc = run(
        "train",
        "--spec",
        str(spec_file),
        "--name",
        "cli-ok",
        "--hp",
        "epochs=2",
        "--max-runtime",
        "120",
        "--follow",
        "--json",
    )
    assert code == 0, (out, err, exc)
    assert "Epoch[1] Validation-accuracy=0.550000" in out
    desc = json.loads(out[out.index("{\n") :])
    assert desc["TrainingJobStatus"] == "Completed" and desc["StoppingCondition"] == {"MaxRuntimeInSeconds": 120}
    assert desc["HyperParameters"]["epochs"] == "2"
    code, out, _, _ = run("jobs", "list")
    assert code == 0 and out.splitlines()[0].split() == ["NAME", "STATUS", "SECONDARY", "CREATED"]
    assert out.splitlines()[1].split()[:3] == ["cli-ok", "Completed", "Completed"]
    code, out, _, _ = run("jobs", "describe", "cli-ok")
    assert code == 0 and "ModelArtifacts    s3://out/jobs/cli-ok/output/model.tar.gz" in out
    code, out, _, _ = run("jobs", "metrics", "cli-ok", "--metric", "train:accuracy", "--json")
    assert [p["Value"] for p in json.loads(out)] == [0.5, 0.6]
    code, out, _, _ = run("jobs", "logs", "cli-ok")
    assert code == 0 and "Epoch[0] Train-accuracy=0.500000" in out
    png = tmp_path / "curves.png"
    code, out, err, exc = run("jobs", "plot", "cli-ok", "--out", str(png))
    assert code == 0, (out, err, exc)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "confusion matrix: skipped" in out
    assert "plotting 6 metric points of cli-ok" in err  # it says what it does before the slow part


def test_failed_training_raises_with_its_reason(settings: Settings, tmp_path: Path) -> None:
    put_train_data(settings)
    spec_file = tmp_path / "job.json"
    spec_file.write_text(json.dumps(fake_spec("cli-fail", fail="1")))
    code, _, _, exc = run("train", "--spec", str(spec_file))
    assert code != 0 and "told to fail" in str(exc)
    code, _, _, exc = run("jobs", "describe", "nope")
    assert code != 0 and "does not exist" in str(exc)
    code, _, _, exc = run("train", "--spec", str(spec_file), "--hp", "novalue")
    assert code != 0 and "use key=value" in str(exc)


def test_cli_against_a_server_stop_and_follow(
    settings: Settings,
    server: ServerProcess,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    put_train_data(settings)
    spec_file = tmp_path / "job.json"
    spec_file.write_text(json.dumps(fake_spec("cli-remote", epochs="200", sleep="0.1")))
    code, out, err, exc = run("train", "--spec", str(spec_file), "--url", server.url)
    assert code == 0, (out, err, exc)
    assert "Status            InProgress" in out
    # Stop once the command has set its SIGTERM handler (it prints epochs after that), not while it still starts.
    wait_for(lambda: "Epoch[" in run("jobs", "logs", "cli-remote", "--url", server.url)[1], timeout=60)
    code, out, err, exc = run("jobs", "stop", "cli-remote", "--wait", "--url", server.url)
    assert code == 0, (out, err, exc)
    assert "Status            Stopped (Stopped)" in out
    code, out, _, _ = run("jobs", "logs", "cli-remote", "-f", "--url", server.url)
    assert "SIGTERM at epoch" in out and "Training job stopped" in out
    code, out, _, _ = run("jobs", "list", "--url", server.url, "--status", "Stopped", "--json")
    assert [s["TrainingJobName"] for s in json.loads(out)["TrainingJobSummaries"]] == ["cli-remote"]
