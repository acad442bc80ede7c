"""`tailor tune` in-process (no server): create from a JSON file and flags, wait with a line per trial, then
describe, list, trials; bad flags give one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tailor.cli.main import cli, main
from tailor.settings import Settings
from tests.jobs.specs import put_train_data
from tests.tuning.specs import fake_tuning


@pytest.mark.slow  # two training jobs in this process
def test_tune_create_waits_and_reports_the_best(settings: Settings, tmp_path: Path) -> None:
    put_train_data(settings)
    spec = fake_tuning("from-file", max_jobs=5)
    spec["HyperParameterTuningJobConfig"]["ParameterRanges"] = {}  # the flags give the range
    path = tmp_path / "tune.json"
    path.write_text(json.dumps(spec))
    runner = CliRunner()
    args = ["tune", "create", "--spec", str(path), "--name", "cli-tune", "--max-jobs", "2", "--max-parallel", "2"]
    result = runner.invoke(cli, [*args, "--continuous", "scale=0.2:1.0:Logarithmic", "--seed", "5"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Status                       Completed" in result.stdout
    assert "Strategy                     Random" in result.stdout  # the file's, no flag overrides it
    lines = [line for line in result.stderr.splitlines() if line.startswith("cli-tune-00")]
    assert len(lines) == 2 and all(" Completed  validation:accuracy=" in line for line in lines)
    described = json.loads(runner.invoke(cli, ["tune", "describe", "cli-tune", "--json"]).stdout)
    best = described["BestTrainingJob"]
    assert best["TrainingJobName"] in result.stdout
    trials = runner.invoke(cli, ["tune", "trials", "cli-tune"]).stdout.splitlines()
    assert trials[0].split()[:3] == ["TRAINING", "JOB", "STATUS"]
    assert trials[1].startswith(best["TrainingJobName"])  # best first
    listed = runner.invoke(cli, ["tune", "list"]).stdout
    assert "cli-tune" in listed and "Random" in listed and "2/2" in listed


def test_bad_input_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["tune", "create", "--continuous", "lr=0.1", "--train", "s3://data/train"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    scalings = "Auto, Linear, Logarithmic, ReverseLogarithmic"
    assert err.strip() == f"error: --continuous 'lr=0.1': use name=min:max[:scaling], scaling one of {scalings}"
    with pytest.raises(SystemExit) as exit_:
        main(["tune", "describe", "nobody"])
    assert exit_.value.code == 3 and capsys.readouterr().err.startswith("error: Tuning job 'nobody' does not exist")
