"""Incremental training: a `model` channel with an earlier job's model.tar.gz continues from its weights; a
network that does not match the hyperparameters (num_layers, image_shape, num_classes) fails with one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tailor.algorithms.image_classification import parse_hyperparameters, run
from tailor.algorithms.image_classification.export import write_model
from tailor.algorithms.image_classification.networks import create_model, model_name
from tests.algorithms.helpers import fashion_subset

pytestmark = pytest.mark.slow  # trains twice

BASE = {"num_classes": "10", "num_training_samples": "500", "image_shape": "1,28,28", "time_budget": ""}


def _job(root: Path, hyperparameters: dict[str, str], images: tuple, model_tar: Path | None = None) -> Path:  # type: ignore[type-arg]
    job = root
    (job / "input" / "config").mkdir(parents=True)
    (job / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    configs = {"train": {"ContentType": "application/x-image"}}
    for split, (x, y) in zip(("train", "validation"), images, strict=True):
        for i, (img, label) in enumerate(zip(x, y, strict=True)):
            folder = job / "input" / "data" / split / f"class{int(label)}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img[0]).save(folder / f"{i}.png")
    if model_tar is not None:
        (job / "input" / "data" / "model").mkdir(parents=True)
        shutil.copy(model_tar, job / "input" / "data" / "model" / "model.tar.gz")
        configs["model"] = {"ContentType": "application/x-sagemaker-model"}
    (job / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(configs))
    return job


def _val_accuracy(job: Path) -> float:
    lines = [ln for ln in (job / "log.txt").read_text().splitlines() if "Validation-accuracy=" in ln]
    return float(lines[-1].rsplit("=", 1)[1])


def _run(job: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> int:
    rc = run(job, cache_dir=cache)
    (job / "log.txt").write_text(capsys.readouterr().out)
    return rc


@pytest.mark.timeout(180)
def test_model_channel_continues_from_earlier_weights(
    dataset_mirror: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = (fashion_subset(dataset_mirror, "train", 500), fashion_subset(dataset_mirror, "t10k", 200))
    cache = tmp_path / "cache"
    # 5 epochs: 0.77 validation accuracy measured (0.5 asserted)
    first = _job(tmp_path / "first", {**BASE, "epochs": "5", "mini_batch_size": "50"}, data)
    assert _run(first, cache, capsys) == 0
    earlier = _val_accuracy(first)
    # Continue with a learning rate so small the weights barely move: the result must keep the earlier
    # model's accuracy, where the same run from a random start stays near chance (0.1).
    frozen = {**BASE, "epochs": "1", "mini_batch_size": "50", "learning_rate": "0.000001"}
    second = _job(tmp_path / "second", frozen, data, first / "model" / "model.tar.gz")
    assert _run(second, cache, capsys) == 0
    log = (second / "log.txt").read_text()
    assert "Initialised all weights of fastnet from the model channel" in log
    scratch = _job(tmp_path / "scratch", frozen, data)
    assert _run(scratch, cache, capsys) == 0
    assert earlier > 0.5
    assert _val_accuracy(second) >= earlier - 0.05 > _val_accuracy(scratch) + 0.2


def _artifact(tmp_path: Path, **raw: str) -> Path:
    hp = parse_hyperparameters({"num_training_samples": "10", **raw})
    c, h, w = hp.shape
    name = model_name(hp.architecture, hp.num_layers)
    kwargs = {"num_classes": hp.num_classes, "in_channels": c, "image_size": h}
    model = create_model(name, **kwargs)
    kwargs |= {"mean": [127.5] * c, "std": [64.0] * c}
    tar = tmp_path / "earlier" / "model.tar.gz"
    write_model(tar, model, hp=hp, model_name=name, model_kwargs=kwargs, class_names=None, metrics={}, onnx=False)
    return tar


@pytest.mark.parametrize(
    ("earlier", "now", "message"),
    [
        ({"num_classes": "5"}, {"num_classes": "10"}, "num_classes is 5 in the earlier model but 10"),
        ({"num_layers": "20"}, {"num_layers": "32"}, "num_layers is 20 in the earlier model but 32"),
        ({"image_shape": "1,32,32"}, {"image_shape": "1,28,28"}, "image_shape is 1,32,32 in the earlier model"),
        ({"num_layers": "20"}, {}, "architecture is resnet in the earlier model but fast"),
    ],
)
def test_mismatching_model_channel_fails_clearly(
    dataset_mirror: str, tmp_path: Path, earlier: dict[str, str], now: dict[str, str], message: str
) -> None:
    tar = _artifact(tmp_path, **{"num_classes": "10", "image_shape": "1,28,28", **earlier})
    data = (fashion_subset(dataset_mirror, "train", 20), fashion_subset(dataset_mirror, "t10k", 10))
    job = _job(tmp_path / "job", {**BASE, "num_training_samples": "20", "epochs": "1", **now}, data, tar)
    assert run(job, cache_dir=tmp_path / "cache") == 1
    failure = (job / "output" / "failure").read_text()
    assert message in failure and "incremental training needs the same" in failure and "\n" not in failure
    assert not (job / "model" / "model.tar.gz").exists()
