"""What is in a dataset: counts per class, image sizes, and a grid picture of samples with their labels."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tailor.data import images as _img
from tailor.data.lst import class_names_from_items, list_images, read_lst
from tailor.data.recordio import RecordReader, unpack
from tailor.errors import DataError

_GRID_SAMPLES = 64


@dataclass
class Summary:
    source: Path
    kind: str  # "rec", "folder" or "lst"
    count: int = 0
    per_class: Counter[str] = field(default_factory=Counter)
    sizes: Counter[tuple[int, int, str]] = field(default_factory=Counter)  # (width, height, mode)
    unreadable: list[str] = field(default_factory=list)
    samples: list[tuple[bytes, str]] = field(default_factory=list)  # (encoded image, label text)

    def lines(self) -> list[str]:
        out = [f"{self.source} ({self.kind}): {self.count} images, {len(self.per_class)} classes"]
        width = max((len(k) for k in self.per_class), default=5)
        out += [f"  {k:<{width}}  {v}" for k, v in sorted(self.per_class.items(), key=lambda kv: _sort_key(kv[0]))]
        sizes = ", ".join(f"{w}x{h} {m} ({n})" for (w, h, m), n in self.sizes.most_common(5))
        out.append(f"image sizes (WxH): {sizes}" + (" …" if len(self.sizes) > 5 else ""))
        if self.unreadable:
            out.append(f"warning: {len(self.unreadable)} unreadable images, first: {self.unreadable[0]}")
        return out


def _sort_key(label: str) -> tuple[int, float | str]:
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)


def _label_text(label: object, names: list[str] | None) -> str:
    if np.ndim(label) > 0:
        return "[" + ",".join(f"{v:g}" for v in np.asarray(label).ravel()) + "]"
    value = float(label)  # type: ignore[arg-type]
    if names and value.is_integer() and 0 <= int(value) < len(names):
        return f"{int(value)} {names[int(value)]}"
    return f"{value:g}"


def _add(s: Summary, data: bytes, label: str, name: str, sample_every: int) -> None:
    s.count += 1
    s.per_class[label] += 1
    try:
        im = _img.open_image(data, name=name)
        s.sizes[(im.width, im.height, im.mode)] += 1
    except DataError as err:
        s.unreadable.append(str(err))
        return
    if len(s.samples) < _GRID_SAMPLES and (s.count - 1) % sample_every == 0:
        s.samples.append((data, label))


def inspect_path(path: Path, root: Path | None = None) -> Summary:
    path = Path(path)
    if path.is_dir():
        return _inspect_folder(path)
    if path.suffix == ".rec":
        return _inspect_rec(path)
    if path.suffix == ".lst":
        return _inspect_lst(path, root or path.parent)
    raise DataError("expected a .rec file, a .lst file or an image folder", path=path)


def _inspect_rec(path: Path) -> Summary:
    s = Summary(path, "rec")
    lst = path.with_suffix(".lst")
    names = class_names_from_items(read_lst(lst)) if lst.is_file() else None
    with RecordReader(path) as r:
        offsets = r.offsets()
        every = max(1, len(offsets) // _GRID_SAMPLES)
        for off in offsets:
            header, payload = unpack(r.read_at(off), path=path, where=f"byte {off}")
            _add(s, payload, _label_text(header.label, names), f"{path}, byte {off}", every)
    return s


def _inspect_folder(path: Path) -> Summary:
    s = Summary(path, "folder")
    items, folders = list_images(path, recursive=True)
    every = max(1, len(items) // _GRID_SAMPLES)
    for it in items:
        full = path / it.path
        _add(s, full.read_bytes(), folders[int(it.label)], str(full), every)
    return s


def _inspect_lst(path: Path, root: Path) -> Summary:
    s = Summary(path, "lst")
    items = read_lst(path, root=root)
    names = class_names_from_items(items)
    every = max(1, len(items) // _GRID_SAMPLES)
    for it in items:
        full = root / it.path
        label = _label_text(it.labels[0] if len(it.labels) == 1 else np.asarray(it.labels), names)
        try:
            data = full.read_bytes()
        except OSError as err:
            s.count += 1
            s.per_class[label] += 1
            s.unreadable.append(f"{full}: {err.strerror}")
            continue
        _add(s, data, label, str(full), every)
    return s


def write_grid(summary: Summary, out: Path, *, cell: int = 96, columns: int = 8) -> Path:
    """A PNG of up to 64 samples, each scaled to ``cell`` px with its label written underneath."""
    if not summary.samples:
        raise DataError("no readable images to draw", path=summary.source)
    rows = (len(summary.samples) + columns - 1) // columns
    text_h = 14
    sheet = Image.new("RGB", (columns * cell, rows * (cell + text_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (data, label) in enumerate(summary.samples):
        im = _img.decode(data, 3)
        im.thumbnail((cell, cell), Image.Resampling.NEAREST if max(im.size) < cell else Image.Resampling.BILINEAR)
        if max(im.size) < cell:
            scale = cell // max(im.size)
            im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
        x, y = (i % columns) * cell, (i // columns) * (cell + text_h)
        sheet.paste(im, (x + (cell - im.width) // 2, y + (cell - im.height) // 2))
        draw.text((x + 2, y + cell), label[:16], fill="black")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
