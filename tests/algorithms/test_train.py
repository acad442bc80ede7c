"""A short real training run on a Fashion-MNIST subset, and resume from checkpoint after a stop."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from bench.bench_train import RESNET20_RECIPE

from tailor.algorithms.image_classification.hyperparameters import parse_hyperparameters
from tailor.algorithms.image_classification.train import TrainingStopped, fit
from tests.algorithms.helpers import fashion_subset

pytestmark = pytest.mark.slow  # trains networks

MIN_ACCURACY = 0.72  # 2,000 training images, 4 epochs of the fast net: 0.80 measured (BN momentum 0.4)


@pytest.mark.timeout(180)
def test_fast_net_learns_fashion_mnist_subset(dataset_mirror: str, tmp_path: Path) -> None:
    x, y = fashion_subset(dataset_mirror, "train", 2000)
    xv, yv = fashion_subset(dataset_mirror, "t10k", 500)
    # Epoch-driven (no time budget) so a busy machine changes the duration, not the result.
    hp = parse_hyperparameters(
        {
            "num_classes": "10",
            "num_training_samples": "2000",
            "image_shape": "1,28,28",
            "epochs": "4",
            "mini_batch_size": "128",
            "top_k": "3",
            "time_budget": "",
            "log_interval": "5",
        }
    )
    lines: list[str] = []
    result = fit(hp, x, y, xv, yv, checkpoint_dir=tmp_path / "ck", log=lines.append)
    assert result.metrics["validation:accuracy"] >= MIN_ACCURACY, lines[-8:]
    assert result.metrics["validation:top_k_accuracy_3"] >= result.metrics["validation:accuracy"]
    text = "\n".join(lines)
    for pattern in (
        "Epoch[3] Train-accuracy=",
        "Epoch[3] Validation-accuracy=",
        "Epoch[3] Time cost=",
        "Epoch[0] Batch [5]\tSpeed: ",
        "Epoch[3] Validation-top_k_accuracy_3=",
    ):
        assert pattern in text
    assert (tmp_path / "ck" / "best.safetensors").is_file() and (tmp_path / "ck" / "last.json").is_file()


# ResNet-20 under SageMaker's recipe (lr 0.1 constant, momentum 0.9, wd 1e-4, batch 128, crop) on 2,000 images
# (seed 0): epochs 1-2 validated at 11.1 % / 32.9 % (loss 19.3 / 2.6) while training at 34 % / 61 %; with BatchNorm
# statistics recalibrated before evaluation 49.3 % / 69.6 % (loss 1.28 / 0.88).
SAGEMAKER_RESNET20 = RESNET20_RECIPE


@pytest.mark.timeout(300)
def test_resnet_first_epochs_validate_like_they_train(dataset_mirror: str) -> None:
    x, y = fashion_subset(dataset_mirror, "train", 2000)
    xv, yv = fashion_subset(dataset_mirror, "t10k", 1000)
    raw = {"num_classes": "10", "num_training_samples": "2000", "image_shape": "1,28,28", "epochs": "2"}
    hp = parse_hyperparameters({**raw, **SAGEMAKER_RESNET20})
    lines: list[str] = []
    fit(hp, x, y, xv, yv, log=lines.append)
    metric = {
        line.split("=")[0]: float(line.split("=")[1]) for line in lines if "-accuracy=" in line or "entropy=" in line
    }
    for epoch in (0, 1):
        val, train = metric[f"Epoch[{epoch}] Validation-accuracy"], metric[f"Epoch[{epoch}] Train-accuracy"]
        assert val >= 0.3 and val >= 0.6 * train, lines  # BatchNorm's running statistics keep up with the weights
        assert metric[f"Epoch[{epoch}] Validation-cross-entropy"] < 2.5, lines


@pytest.mark.timeout(120)
def test_stop_writes_checkpoint_and_restart_resumes(dataset_mirror: str, tmp_path: Path) -> None:
    x, y = fashion_subset(dataset_mirror, "train", 512)
    raw = {
        "num_classes": "10",
        "num_training_samples": "512",
        "image_shape": "1,28,28",
        "epochs": "3",
        "mini_batch_size": "64",
        "optimizer": "adam",
        "learning_rate": "0.002",
        "num_layers": "20",
        "checkpoint_frequency": "1",
        "precision_dtype": "float16",
    }
    hp = parse_hyperparameters(raw)
    stop = threading.Event()
    first: list[str] = []

    def log(line: str) -> None:  # request a stop as soon as epoch 0 is done (as SIGTERM would)
        first.append(line)
        if line.startswith("Epoch[0] Time cost"):
            stop.set()

    with pytest.raises(TrainingStopped):
        fit(hp, x, y, checkpoint_dir=tmp_path / "ck", log=log, stop=stop)
    assert any("training in float32" in line for line in first)  # fp16 on CPU falls back, and says so
    assert (tmp_path / "ck" / "epoch-0001.json").is_file()
    second: list[str] = []
    result = fit(hp, x, y, checkpoint_dir=tmp_path / "ck", log=second.append)
    assert any(line.startswith("Resumed from checkpoint after epoch 0") for line in second)
    assert not any(line.startswith("Epoch[0]") for line in second)
    assert any(line.startswith("Epoch[2] Train-accuracy=") for line in second)
    assert result.epochs == 3
