from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tailor.cli.main import cli
from tailor.data.loader import load_channel
from tailor.data.recordio import IRHeader, RecordWriter, pack
from tailor.errors import DataError

from .conftest import CLASSES, make_tree


def _pack(image_tree: Path, tmp_path: Path, *extra: str) -> Path:
    prefix = tmp_path / "train"
    runner = CliRunner()
    assert runner.invoke(cli, ["data", "im2rec", str(prefix), str(image_tree), "--list", "--recursive"]).exit_code == 0
    res = runner.invoke(cli, ["data", "im2rec", str(prefix), str(image_tree), *extra])
    assert res.exit_code == 0, res.output
    return prefix


def test_rec_channel_cached_second_load_is_fast(image_tree: Path, tmp_path: Path) -> None:
    prefix = _pack(image_tree, tmp_path, "--encoding", ".png")
    channel = tmp_path / "ch"
    channel.mkdir()
    for ext in (".rec", ".idx", ".lst"):
        (channel / f"train{ext}").write_bytes(Path(f"{prefix}{ext}").read_bytes())
    cache = tmp_path / "cache"
    first = load_channel(channel, None, channels=1, size=(8, 8), cache_dir=cache)
    assert first.images.shape == (12, 1, 8, 8) and first.images.dtype == np.uint8
    assert first.class_names == list(CLASSES)
    assert isinstance(first.images, np.memmap)
    t0 = time.perf_counter()
    again = load_channel(channel, None, channels=1, size=(8, 8), cache_dir=cache)
    assert time.perf_counter() - t0 < 0.5
    np.testing.assert_array_equal(first.images, again.images)
    # pixels = centre crop (rows 1..9, cols 2..10) of the grey conversion of the source image
    lines = (channel / "train.lst").read_text().splitlines()
    path = lines[0].split("\t")[-1]
    src = np.asarray(Image.open(image_tree / path).convert("L"))[1:9, 2:10]
    np.testing.assert_array_equal(first.images[0, 0], src)
    assert len(list(cache.iterdir())) == 1


def test_image_channel_with_lst_dir_and_resize(image_tree: Path, tmp_path: Path) -> None:
    lst_dir = tmp_path / "train_lst"
    lst_dir.mkdir()
    res = CliRunner().invoke(
        cli, ["data", "im2rec", str(lst_dir / "train"), str(image_tree), "--list", "--recursive", "--no-shuffle"]
    )
    assert res.exit_code == 0
    data = load_channel(image_tree, "application/x-image", channels=3, size=(5, 5), resize=6, lst_dir=lst_dir)
    assert data.images.shape == (12, 3, 5, 5)
    np.testing.assert_array_equal(data.labels, np.repeat([0.0, 1.0, 2.0], 4))
    assert data.class_names == list(CLASSES)


def test_image_smaller_than_size_names_image_and_sizes(image_tree: Path) -> None:
    with pytest.raises(DataError) as err:
        load_channel(image_tree, "application/x-image", channels=3, size=(28, 28))
    assert "cat/0.png" in str(err.value) and "10x12" in str(err.value) and "28x28" in str(err.value)


def test_size_none_requires_one_size(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "a", per_class=1)
    Image.new("RGB", (20, 20)).save(root / "eel" / "big.png")
    with pytest.raises(DataError, match="big.png.*20x20"):
        load_channel(root, None, channels=3, size=None)


def test_manifest_class_id_and_multi_hot(image_tree: Path, tmp_path: Path) -> None:
    channel = tmp_path / "man"
    channel.mkdir()
    refs = sorted(image_tree.rglob("*.png"))
    lines = [
        {"source-ref": str(p), "class": CLASSES.index(p.parent.name), "class-metadata": {"class-name": p.parent.name}}
        for p in refs
    ]
    (channel / "train.manifest").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    data = load_channel(channel, "application/jsonlines", channels=1, size=(10, 12))
    np.testing.assert_array_equal(data.labels, [x["class"] for x in lines])
    assert data.class_names == list(CLASSES)
    multi = [{"source-ref": f"file://{p}", "labels": "[1, 0, 1]"} for p in refs[:3]]
    (channel / "train.manifest").write_text("\n".join(json.dumps(x) for x in multi))
    data = load_channel(channel, None, channels=3, size=None, attribute_names=["source-ref", "labels"])
    assert data.labels.shape == (3, 3) and data.labels.dtype == np.float32
    (channel / "train.manifest").write_text('{"source-ref": "x.png"}\n')
    with pytest.raises(DataError, match="line 1"):
        load_channel(channel, None, channels=1, size=None)


def test_rec_multi_label_and_parallel_decode(tmp_path: Path) -> None:
    # 2,500 records crosses the threshold for the two-process decoder.
    channel = tmp_path / "big"
    rng = np.random.default_rng(1)
    arrs = rng.integers(0, 256, (16, 6, 6), dtype=np.uint8)
    blobs = []
    for a in arrs:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "PNG")
        blobs.append(buf.getvalue())
    with RecordWriter(channel / "d.rec", channel / "d.idx") as w:
        for i in range(2500):
            w.write_idx(i, pack(IRHeader(0, np.array([i % 2, 1.0, i % 3]), i, 0), blobs[i % 16]))
    data = load_channel(channel, None, channels=1, size=(6, 6), cache_dir=tmp_path / "c")
    assert data.labels.shape == (2500, 3)
    np.testing.assert_array_equal(data.labels[:, 2], np.arange(2500) % 3)
    np.testing.assert_array_equal(data.images[:, 0], arrs[np.arange(2500) % 16])


def test_corrupt_image_in_rec_is_a_data_error(tmp_path: Path) -> None:
    with RecordWriter(tmp_path / "ch" / "x.rec") as w:
        w.write(pack(IRHeader(0, 1.0, 0, 0), b"\x89PNG\r\n\x1a\nnot really"))
    with pytest.raises(DataError, match="x.rec, byte 0"):
        load_channel(tmp_path / "ch", None, channels=1, size=None)
