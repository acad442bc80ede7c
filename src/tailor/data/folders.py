"""IDX images + labels → one folder per class of JPEG/PNG files (``import-idx``), written in parallel."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from tailor.data.forked import fork_map
from tailor.data.idx import read_idx
from tailor.errors import DataError, ValidationError

_CHUNK = 1000


def _write_chunk(args: tuple[np.ndarray, np.ndarray, np.ndarray, list[str], str, str, int]) -> int:
    images, labels, ids, names, out_dir, fmt, quality = args
    for img, lab, i in zip(images, labels, ids, strict=True):
        path = os.path.join(out_dir, names[int(lab)], f"{int(i):05d}.{fmt}")
        tmp = path + ".tmp"
        im = Image.fromarray(img)
        if fmt == "png":
            im.save(tmp, "PNG", compress_level=1)  # level 1: ~3x faster than 6, +10 % bytes on 28x28
        else:
            im.save(tmp, "JPEG", quality=quality)
        os.replace(tmp, path)
    return len(ids)


def import_idx(
    images_path: Path,
    labels_path: Path,
    out_dir: Path,
    class_names: Sequence[str],
    *,
    fmt: str = "jpg",
    quality: int = 95,
    limit: int | None = None,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write ``out_dir/<class name>/<index>.<fmt>``; returns images per class folder."""
    if fmt not in ("jpg", "png"):
        raise ValidationError(f"--format must be jpg or png, got {fmt!r}")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim not in (3, 4) or images.dtype != np.uint8:
        raise DataError(f"expected uint8 images (N, H, W[, C]), got {images.dtype} {images.shape}", path=images_path)
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{labels.shape} labels for {len(images)} images", path=labels_path)
    if len(images) and int(labels.max()) >= len(class_names):
        raise ValidationError(f"labels go up to {int(labels.max())} but only {len(class_names)} class names given")
    if len(set(class_names)) != len(class_names) or any(not n or "/" in n or n.startswith(".") for n in class_names):
        raise ValidationError("class names must be unique, non-empty, without '/' and not start with '.'")
    n = len(images) if limit is None else min(limit, len(images))
    for name in class_names:
        (Path(out_dir) / name).mkdir(parents=True, exist_ok=True)
    ids = np.arange(n)
    images, labels = images[:n], labels[:n]
    jobs = [
        (
            images[s : s + _CHUNK],
            labels[s : s + _CHUNK],
            ids[s : s + _CHUNK],
            list(class_names),
            str(out_dir),
            fmt,
            quality,
        )
        for s in range(0, n, _CHUNK)
    ]
    for done in fork_map(lambda i: _write_chunk(jobs[i]), len(jobs), workers, ordered=False):
        if progress:
            progress(done)
    counts = np.bincount(labels.astype(np.int64), minlength=len(class_names))
    return {name: int(c) for name, c in zip(class_names, counts, strict=True)}
