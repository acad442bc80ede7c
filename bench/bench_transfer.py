"""Transfer-learning benchmark: flowers (1,000 real colour JPEGs, 5 classes), EfficientNet-Lite0 fine-tuned from
ImageNet (``use_pretrained_model=1``) beside the same network and recipe from scratch, same run, same machine.

Split: stratified 80/20 per class with a fixed seed (800 train / 200 validation). Images go through the job's
own data path (``load_channel``: shorter side resized to the image size, centre crop, decoded-uint8 cache).
Both runs use ``pretrained_defaults()`` (nag, one-cycle, batch 32, crop+flip, flip TTA) and the same epochs;
the pretrained run spends ``head_warmup_epochs`` with the body frozen first. Reported: validation accuracy,
training seconds (evaluation excluded) and wall seconds. Goal: >= 90 % validation accuracy within 10 minutes
of CPU training.

``python -m bench transfer [--size=224] [--epochs=3] [--warmup=2]`` (``=`` form: bench passes only "-" args).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from tailor.data.split import split_folders

# The Makefile's file:// dataset mirror when set (any checkout or worktree), else ../shared beside the repository.
_MIRROR = os.environ.get("TAILOR_DATASET_MIRROR", "")
_DATASETS = Path(_MIRROR.removeprefix("file://")) if _MIRROR.startswith("file://") else None
FLOWERS = (_DATASETS or Path(__file__).resolve().parents[2] / "shared" / "datasets") / "flower_photos"


def load_flowers(split_dir: Path, size: int, cache: Path):  # noqa: ANN201 - tailor.data.loader.ImageSet
    from tailor.data.loader import load_channel

    return load_channel(split_dir, "application/x-image", channels=3, size=(size, size), resize=size, cache_dir=cache)


def run_one(pretrained: bool, train, val, size: int, epochs: int, warmup: int) -> dict[str, float]:  # noqa: ANN001
    from tailor.algorithms.image_classification.hyperparameters import parse_hyperparameters
    from tailor.algorithms.image_classification.train import fit

    hp = parse_hyperparameters(
        {
            "num_classes": "5",
            "num_training_samples": str(len(train.images)),
            "image_shape": f"3,{size},{size}",
            "architecture": "efficientnet_lite0",
            "use_pretrained_model": "1" if pretrained else "0",
            "epochs": str(epochs),
            "head_warmup_epochs": str(warmup),
            "log_interval": "1000",
        }
    )
    curve: list[str] = []

    def log(line: str) -> None:
        if "Validation-accuracy" in line or "Time cost" in line:
            curve.append(line.split("] ", 1)[-1])

    t0 = time.perf_counter()
    result = fit(hp, train.images, train.labels, val.images, val.labels, log=log)
    wall = time.perf_counter() - t0
    accs = [float(c.split("=")[1]) for c in curve if c.startswith("Validation-accuracy")]
    print(f"    per-epoch validation accuracy: {', '.join(f'{a:.3f}' for a in accs)}", flush=True)
    return {
        "accuracy": result.metrics.get("validation:accuracy", float("nan")),
        "train_s": result.metrics["training_seconds"],
        "wall_s": wall,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench transfer")
    parser.add_argument("--size", type=int, default=224, help="image side in px (default 224)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="head_warmup_epochs of the pretrained run")
    parser.add_argument("--only-pretrained", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as tmp:
        split = split_folders(FLOWERS, Path(tmp) / "split", ratio=0.8, seed=0)  # `tailor data split`
        train_dir, val_dir = split.train, split.validation
        t0 = time.perf_counter()
        train = load_flowers(train_dir, args.size, Path(tmp) / "cache")
        val = load_flowers(val_dir, args.size, Path(tmp) / "cache")
        print(
            f"flowers: {len(train.images)} train / {len(val.images)} validation at {args.size}px, decoded in "
            f"{time.perf_counter() - t0:.1f} s; load average {os.getloadavg()[0]:.1f} (2 cores, shared)",
            flush=True,
        )
        rows = []
        for pretrained in (True, False) if not args.only_pretrained else (True,):
            label = "EfficientNet-Lite0, ImageNet weights" if pretrained else "EfficientNet-Lite0, from scratch"
            print(f"  {label}: {args.epochs} epochs", flush=True)
            rows.append((label, run_one(pretrained, train, val, args.size, args.epochs, args.warmup)))
    print(f"{'run':40s} {'val acc':>8s} {'train s':>8s} {'wall s':>8s}")
    for label, r in rows:
        print(f"{label:40s} {r['accuracy']:8.3f} {r['train_s']:8.1f} {r['wall_s']:8.1f}")
    if len(rows) == 2:
        print(f"accuracy gain, pretrained - scratch: {rows[0][1]['accuracy'] - rows[1][1]['accuracy']:+.3f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
