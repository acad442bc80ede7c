"""Channels -> arrays: the job's ``input/data/<channel>`` through ``tailor.data.loader`` (decoded-uint8 cache)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tailor.algorithms.image_classification.hyperparameters import Hyperparameters
from tailor.data.loader import ImageSet, load_channel
from tailor.errors import DataError


def load_split(
    data_dir: Path,
    channel: str,
    hp: Hyperparameters,
    channel_config: dict[str, Any] | None,
    *,
    cache_dir: Path | None,
    required: bool,
) -> ImageSet | None:
    """Decode channel ``train`` or ``validation`` to image_shape (centre crop; smaller images fail)."""
    directory = data_dir / channel
    if not directory.is_dir():
        if required:
            raise DataError(f"the {channel!r} channel is required", path=directory)
        return None
    c, h, w = hp.shape
    lst_dir = data_dir / f"{channel}_lst"
    config = channel_config or {}
    images = load_channel(
        directory,
        config.get("ContentType"),
        channels=c,
        size=(h, w),
        resize=hp.resize,
        lst_dir=lst_dir if lst_dir.is_dir() else None,
        cache_dir=cache_dir,
        attribute_names=config.get("AttributeNames"),
    )
    check_labels(images.labels, hp, directory)
    return images


def check_labels(labels: np.ndarray, hp: Hyperparameters, where: Path) -> None:
    """Labels must fit num_classes / multi_label before an hour of training discovers otherwise."""
    if hp.multi_label:
        if labels.ndim != 2 or labels.shape[1] != hp.num_classes:
            raise DataError(
                f"multi_label=1 needs labels of width num_classes={hp.num_classes}, got shape {labels.shape}",
                path=where,
            )
        return
    if labels.ndim != 1:
        raise DataError(f"labels have shape {labels.shape}: set multi_label=1 for multi-label data", path=where)
    top = int(labels.max()) if labels.size else 0
    if top >= hp.num_classes or (labels.size and labels.min() < 0):
        raise DataError(f"label {top} is out of range for num_classes={hp.num_classes}", path=where)
