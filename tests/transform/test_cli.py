"""`tailor transform` through the click entry point, in-process on the test's home (the job runs here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from tailor.cli.main import cli, main
from tailor.client import Client
from tailor.settings import Settings
from tests.transform.conftest import put_images

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]  # model worker processes


def test_transform_prints_counts_accuracy_and_writes_the_confusion_png(
    client: Client, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = put_images(settings, "imgs", per_class=10)
    client.close()  # the CLI opens the same home itself
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli, ["transform", "rn20", "s3://data/imgs/", "--out", "s3://out/cli/", "--name", "cli-1"]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    out = result.stdout
    # What the summary says is what the .out files say: recount it from them.
    root = settings.buckets_dir / "out" / "cli"
    names = json.loads((next(settings.models_dir.iterdir()) / "model.json").read_text())["class_names"]
    predicted = {}
    for k in keys:
        probs = json.loads((root / f"{k}.out").read_text())["prediction"]
        predicted[k] = names[max(range(10), key=probs.__getitem__)]
    correct = sum(predicted[k] == k.split("/")[0] for k in keys)
    assert "cli-1: Completed, 30 of 30 records (0 failed)" in out
    for name in set(predicted.values()):
        count = list(predicted.values()).count(name)
        assert any(line.split() == [*name.split(), str(count)] for line in out.splitlines()), (name, out)
    assert f"accuracy: {100 * correct / 30:.2f} % ({correct} of 30 images labelled by their class folder)" in out
    assert "confusion matrix: cli-1-confusion.png" in out
    with Image.open(tmp_path / "cli-1-confusion.png") as img:
        assert img.format == "PNG" and img.width > 300
    assert "\r" not in result.stderr and "transform cli-1: 30 img of 30 img (100 %)" in result.stderr  # plain lines
    listed = CliRunner().invoke(cli, ["transform-jobs", "list"])
    assert listed.exit_code == 0 and "cli-1" in listed.stdout and "Completed" in listed.stdout


def test_transform_errors_are_one_line(client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    client.close()
    with pytest.raises(SystemExit) as exited:
        main(["transform", "missing", "s3://data/imgs/", "--out", "s3://out/x/"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "Could not find model 'missing'" in err
