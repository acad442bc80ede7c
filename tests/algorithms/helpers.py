"""Small Fashion-MNIST subsets for algorithm tests, read straight from the IDX files of the dataset mirror."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path) as fh:
        raw = fh.read()
    ndim = raw[3]
    dims = np.frombuffer(raw[4 : 4 + 4 * ndim], ">u4").astype(int)
    return np.frombuffer(raw[4 + 4 * ndim :], np.uint8).reshape(dims)


def fashion_subset(mirror: str, split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """First ``n`` images (uint8 (n, 1, 28, 28)) and labels (float32 (n,)) of ``train`` or ``t10k``."""
    root = Path(mirror.removeprefix("file://")) / "fashion-mnist"
    images = _idx(root / f"{split}-images-idx3-ubyte.gz")[:n, None]
    labels = _idx(root / f"{split}-labels-idx1-ubyte.gz")[:n].astype(np.float32)
    return np.ascontiguousarray(images), labels
