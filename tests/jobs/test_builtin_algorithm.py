"""One job with the real built-in algorithm on a tiny Fashion-MNIST subset, then `tailor jobs plot`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from tailor import Client
from tailor.cli.main import cli
from tailor.settings import Settings
from tests.algorithms.helpers import fashion_subset

pytestmark = pytest.mark.slow  # trains the built-in algorithm (~40 s)


def _folders(root: Path, x: object, y: object) -> None:
    for i, (img, label) in enumerate(zip(x, y, strict=True)):  # type: ignore[call-overload]
        folder = root / f"class{int(label)}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0]).save(folder / f"{i}.png")


@pytest.mark.timeout(180)
def test_builtin_algorithm_job_completes_and_plots(settings: Settings, dataset_mirror: str, tmp_path: Path) -> None:
    bucket = settings.buckets_dir / "data" / "fmnist"
    _folders(bucket / "train", *fashion_subset(dataset_mirror, "train", 200))
    _folders(bucket / "validation", *fashion_subset(dataset_mirror, "t10k", 100))
    channel = lambda name: {  # noqa: E731
        "ChannelName": name,
        "ContentType": "application/x-image",
        "DataSource": {"S3DataSource": {"S3Uri": f"s3://data/fmnist/{name}"}},
    }
    with Client(settings=settings) as client:
        job = client.create_training_job(
            TrainingJobName="builtin-tiny",
            AlgorithmSpecification={"TrainingImage": "tailor/image-classification"},
            HyperParameters={
                "num_classes": "10",
                "num_training_samples": "200",
                "image_shape": "1,28,28",
                "epochs": "2",
                "mini_batch_size": "50",
            },
            InputDataConfig=[channel("train"), channel("validation")],
            OutputDataConfig={"S3OutputPath": "s3://out/models"},
        )
        desc = job.wait(timeout=170)
        log = job.logs()
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["HyperParameters"]["architecture"] == "fast"  # resolved with Tailor's defaults, recorded
    # What ran, stated: no ResNet depth beside the fast net; the log gives its size and what ends training.
    assert "num_layers" not in desc["HyperParameters"]
    network = next(line for line in log.splitlines() if "Network fastnet:" in line)
    assert re.search(r"0\.\d\d M parameters \([\d,]+\).*trains for 300 s of training \(time_budget; epochs=2", network)
    assert "widths 24/48/96 and a stem of 16 channels" in network  # a 300 s budget keeps the default shape
    final = {m["MetricName"] for m in desc["FinalMetricDataList"]}
    assert {"train:accuracy", "validation:accuracy"} <= final
    out = tmp_path / "curves.png"
    result = CliRunner().invoke(cli, ["jobs", "plot", "builtin-tiny", "--out", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    assert out.is_file() and (tmp_path / "curves-confusion.png").is_file()
