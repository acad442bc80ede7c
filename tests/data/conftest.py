"""Small generated image trees for the data tests (no network, a few KB each)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASSES = ("cat", "dog", "eel")


def make_tree(root: Path, per_class: int = 4, size: tuple[int, int] = (12, 10), fmt: str = "png") -> Path:
    """root/<class>/<i>.<fmt> random RGB images of size (width, height); returns root."""
    rng = np.random.default_rng(7)
    for c in CLASSES:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{i}.{fmt}")
    return root


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "images")
