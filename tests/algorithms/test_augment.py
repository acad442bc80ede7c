"""Batch augmentation, and the budgets that train with flips only."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from tailor.algorithms.image_classification.augment import crop_flip
from tailor.algorithms.image_classification.hyperparameters import parse_hyperparameters
from tailor.algorithms.image_classification.train import TrainingStopped, fit


def _images(n: int = 64) -> torch.Tensor:
    return torch.randint(1, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def _kinds(images: torch.Tensor, out: torch.Tensor) -> tuple[int, int, int]:
    """How many outputs equal their input, its mirror image, or neither."""
    same = (out == images).flatten(1).all(1)
    mirrored = (out == images.flip(3)).flatten(1).all(1) & ~same
    return int(same.sum()), int(mirrored.sum()), int((~same & ~mirrored).sum())


def test_pad_zero_only_flips() -> None:
    images = _images()
    same, mirrored, other = _kinds(images, crop_flip(images, torch.Generator().manual_seed(0), pad=0))
    assert other == 0 and same > 10 and mirrored > 10


def test_default_pad_translates_and_flips() -> None:
    images = _images()
    out = crop_flip(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    _, _, other = _kinds(images, out)
    assert other > 40  # 24 of 25 offsets move the image (the pixels are never 0, so a shift shows)
    assert (out == 0).any()  # the zero padding shows at the edges


def _first_lines(raw: dict[str, str]) -> list[str]:
    """The log of a fit stopped at its first step (the network and recipe are chosen before it)."""
    x = np.random.default_rng(0).integers(0, 256, (64, 1, 28, 28), dtype=np.uint8)
    y = (np.arange(64) % 10).astype(np.float32)
    hp = parse_hyperparameters({"num_classes": "10", "num_training_samples": "64", "image_shape": "1,28,28", **raw})
    stop = threading.Event()
    stop.set()
    lines: list[str] = []
    with pytest.raises(TrainingStopped):
        fit(hp, x, y, log=lines.append, stop=stop)
    return lines


def test_binding_budgets_up_to_300_s_train_with_flips_only_and_up_to_90_s_on_the_narrow_net() -> None:
    # 64 images x 20,000 epochs do not fit in 300 s at ~2,000 img/s: every budget below binds.
    short = "\n".join(_first_lines({"time_budget": "60", "epochs": "20000"}))
    assert "widths 16/32/64 and a stem of 8 channels" in short
    flips_only = "Augmentation crop: horizontal flips without translation (a time budget of 300 s or less)"
    assert flips_only in short
    default = "\n".join(_first_lines({"time_budget": "300", "epochs": "20000"}))  # the default budget: wide net
    assert "widths 24/48/96 and a stem of 16 channels" in default and flips_only in default
    for raw in ({"time_budget": "301", "epochs": "20000"}, {"time_budget": "60", "epochs": "10"}):
        long = "\n".join(_first_lines(raw))  # a longer budget, or one the epochs end first
        assert "widths 24/48/96 and a stem of 16 channels" in long
        assert "Augmentation" not in long
