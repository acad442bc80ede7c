"""Split a folder of class folders into ``train/`` and ``validation/`` class folders, stratified and seeded.

``split_folders(SRC, DST, ratio=0.8, seed=0)`` gives each class the same share: the class's images (sorted by
name, then shuffled by one ``random.Random(seed)`` walking the classes in sorted order) go first to
validation (``round(n × (1 − ratio))`` of them), the rest to train. Same seed, same files → same split on any
machine. The new folders hold symlinks to the originals (no copy of the data) unless ``copy`` is set.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from tailor.errors import DataError, ValidationError

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
SPLITS = ("train", "validation")


@dataclass(frozen=True)
class SplitResult:
    train: Path
    validation: Path
    counts: dict[str, tuple[int, int]]  # class → (train images, validation images)

    def totals(self) -> tuple[int, int]:
        return sum(t for t, _ in self.counts.values()), sum(v for _, v in self.counts.values())


def split_folders(
    src: Path,
    dst: Path,
    *,
    ratio: float = 0.8,
    seed: int = 0,
    copy: bool = False,
    per_class: int | None = None,
) -> SplitResult:
    """``dst/train/<class>/`` and ``dst/validation/<class>/``; ``per_class`` keeps only that many of each class."""
    if not 0 < ratio < 1:
        raise ValidationError(f"--ratio must be between 0 and 1 (the train share), got {ratio}")
    src, dst = Path(src).resolve(), Path(dst)
    if not src.is_dir():
        raise DataError("source folder not found", path=src)
    classes = sorted(p.name for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError("no class folders inside (expected SRC/<class>/<image>)", path=src)
    for split in SPLITS:
        if (dst / split).exists() and any((dst / split).iterdir()):
            raise DataError("already holds files: remove it or choose another destination", path=dst / split)
    rng = random.Random(seed)
    plan: dict[str, tuple[list[Path], list[Path]]] = {}
    for cls in classes:
        files = sorted(f for f in (src / cls).iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTS)
        rng.shuffle(files)
        files = files[:per_class] if per_class else files
        n_val = round(len(files) * (1 - ratio))
        if len(files) - n_val < 1:
            raise DataError(f"class {cls!r} has {len(files)} image(s): too few to give train one", path=src / cls)
        plan[cls] = (files[n_val:], files[:n_val])
    for cls, parts in plan.items():
        for split, files in zip(SPLITS, parts, strict=True):
            folder = dst / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for f in files:
                if copy:
                    shutil.copy2(f, folder / f.name)
                else:
                    (folder / f.name).symlink_to(f)
    counts = {cls: (len(tr), len(va)) for cls, (tr, va) in plan.items()}
    return SplitResult(dst / "train", dst / "validation", counts)
