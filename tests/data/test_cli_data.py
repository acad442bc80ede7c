"""`tailor data …` end to end through the CLI: lists, packing, IDX import, datasets, inspect, cp."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from tailor.cli.main import cli
from tailor.data.datasets import DATASETS, md5_of
from tailor.data.idx import read_idx, write_idx
from tailor.data.lst import read_lst
from tailor.data.recordio import RecordReader
from tailor.errors import DataError, StorageError

FASHION = ["AnkleBoot", "Bag", "Coat", "Dress", "Pullover", "Sandal", "Shirt", "Sneaker", "TShirtTop", "Trouser"]


def _ok(*args: str) -> Result:
    res = CliRunner().invoke(cli, list(args))
    assert res.exit_code == 0, (res.output, res.exception)
    return res


def _err(*args: str) -> BaseException:
    res = CliRunner().invoke(cli, list(args))
    assert res.exit_code != 0 and res.exception is not None
    return res.exception


def test_list_split_ratios_and_chunks(image_tree: Path, tmp_path: Path) -> None:
    p = tmp_path / "l" / "ds"
    _ok("data", "im2rec", str(p), str(image_tree), "--list", "--recursive", "--train-ratio", "0.5", "--test-ratio",
        "0.25")  # fmt: skip
    sizes = {s: len(read_lst(f"{p}_{s}.lst")) for s in ("train", "val", "test")}
    assert sizes == {"train": 6, "val": 3, "test": 3}
    all_paths = sorted(it.path for s in sizes for it in read_lst(f"{p}_{s}.lst"))
    assert all_paths == sorted(str(f.relative_to(image_tree)) for f in image_tree.rglob("*.png"))
    _ok("data", "im2rec", str(tmp_path / "c" / "ds"), str(image_tree), "--list", "--recursive", "--chunks", "2",
        "--no-shuffle")  # fmt: skip
    first = read_lst(tmp_path / "c" / "ds_0.lst")
    assert [it.index for it in first] == list(range(6))
    # non-recursive: root's own images only, all label 0
    _ok("data", "im2rec", str(tmp_path / "n" / "x"), str(image_tree / "dog"), "--list", "--exts", ".png", ".jpg")
    assert {it.label for it in read_lst(tmp_path / "n" / "x.lst")} == {0.0}


def test_bad_lists_name_file_and_line(image_tree: Path, tmp_path: Path) -> None:
    lst = tmp_path / "bad.lst"
    lst.write_text("0\t1.000000\tcat/0.png\n1\tcat/1.png\n")
    err = _err("data", "im2rec", str(tmp_path / "bad"), str(image_tree))
    assert isinstance(err, DataError) and "bad.lst, line 2" in str(err) and "columns" in str(err)
    lst.write_text("0\t1.000000\t../../etc/passwd\n")
    err = _err("data", "im2rec", str(tmp_path / "bad"), str(image_tree))
    assert "line 1" in str(err) and "escapes" in str(err)
    assert not list(tmp_path.glob("*.rec"))
    (image_tree / "empty").mkdir()
    err = _err("data", "im2rec", str(tmp_path / "e"), str(image_tree), "--list", "--recursive")
    assert "empty" in str(err) and "no images" in str(err)


def test_unreadable_images_warn_and_count(image_tree: Path, tmp_path: Path) -> None:
    (image_tree / "dog" / "9.png").write_bytes(b"this is not a png")
    p = tmp_path / "w"
    _ok("data", "im2rec", str(p), str(image_tree), "--list", "--recursive")
    for extra in ([], ["--pass-through"], ["--num-thread", "2", "--resize", "4", "--center-crop"]):
        res = _ok("data", "im2rec", str(p), str(image_tree), *extra)
        assert "9.png" in res.output and "1 unreadable images skipped" in res.output
        with RecordReader(f"{p}.rec") as r:
            assert len(r.offsets()) == 12 == len(r.keys)


def test_pass_through_copies_bytes(image_tree: Path, tmp_path: Path) -> None:
    p = tmp_path / "pt"
    _ok("data", "im2rec", str(p), str(image_tree), "--list", "--recursive")
    _ok("data", "im2rec", str(p), str(image_tree), "--pass-through", "--num-thread", "2")
    with RecordReader(f"{p}.rec") as r:
        for it in read_lst(f"{p}.lst"):
            assert r.read_idx(it.index)[24:] == (image_tree / it.path).read_bytes()


def test_idx_round_trip_and_corrupt_header(tmp_path: Path) -> None:
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a.idx", "a.idx.gz"):
        np.testing.assert_array_equal(read_idx(write_idx(tmp_path / name, arr)), arr)
    (tmp_path / "bad").write_bytes(b"\x01\x00\x08\x03" + b"\x00" * 12)
    with pytest.raises(DataError, match="bad, byte 0.*magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x09abc"))
    with pytest.raises(DataError, match=r"shape \(9,\)"):
        read_idx(tmp_path / "short.gz")


@pytest.mark.slow
def test_fetch_and_import_fashion_mnist_slice(dataset_mirror: str, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("TAILOR_DATASET_MIRROR", dataset_mirror)
    res = _ok("data", "fetch", "fashion-mnist", "--dest", str(tmp_path / "raw"))
    for fname, md5 in DATASETS["fashion-mnist"].md5.items():
        assert md5_of(tmp_path / "raw" / fname) == md5 and fname in res.output
    out = tmp_path / "fm"
    _ok("data", "import-idx", str(out), "--dataset", "fashion-mnist", "--limit", "200", "--format", "png")
    assert sorted(p.name for p in (out / "train").iterdir()) == FASHION
    assert sum(1 for _ in (out / "test").rglob("*.png")) == 200
    labels = read_idx(tmp_path / "raw" / "train-labels-idx1-ubyte.gz")[:200]
    images = read_idx(tmp_path / "raw" / "train-images-idx3-ubyte.gz")
    names = DATASETS["fashion-mnist"].class_names
    from PIL import Image

    for i in (0, 57, 199):
        img = np.asarray(Image.open(out / "train" / names[labels[i]] / f"{i:05d}.png"))
        np.testing.assert_array_equal(img, images[i])
    # the whole seed path: folders → 70/30 lists → .rec, and the .rec's labels follow sorted folder order
    _ok("data", "im2rec", str(tmp_path / "fm_rec"), str(out / "train"), "--list", "--recursive", "--train-ratio", "0.7")
    _ok("data", "im2rec", str(tmp_path / "fm_rec"), str(out / "train"), "--num-thread", "2")
    res = _ok("data", "inspect", str(tmp_path / "fm_rec_train.rec"), "--grid", str(tmp_path / "grid.png"))
    assert "140 images, 10 classes" in res.output and "0 AnkleBoot" in res.output and "28x28" in res.output
    assert (tmp_path / "grid.png").stat().st_size > 1000
    res = _ok("data", "inspect", str(out / "test"))
    assert "200 images" in res.output and "TShirtTop" in res.output


def test_fetch_rejects_corrupted_mirror_file(dataset_mirror: str, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    mirror = tmp_path / "mirror" / "mnist"
    shutil.copytree(Path(dataset_mirror[len("file://") :]) / "mnist", mirror)
    data = bytearray((mirror / "t10k-labels-idx1-ubyte.gz").read_bytes())
    data[100] ^= 0xFF
    (mirror / "t10k-labels-idx1-ubyte.gz").write_bytes(bytes(data))
    monkeypatch.setenv("TAILOR_DATASET_MIRROR", (tmp_path / "mirror").as_uri())
    err = _err("data", "fetch", "mnist")
    assert isinstance(err, DataError) and "md5 mismatch" in str(err) and "t10k-labels" in str(err)
    (mirror / "t10k-labels-idx1-ubyte.gz").unlink()
    assert isinstance(_err("data", "fetch", "mnist"), StorageError)


def test_inspect_lst_and_cp_to_local_bucket(image_tree: Path, tmp_path: Path, settings) -> None:  # noqa: ANN001
    p = tmp_path / "ds"
    _ok("data", "im2rec", str(p), str(image_tree), "--list", "--recursive")
    res = _ok("data", "inspect", f"{p}.lst", "--root", str(image_tree))
    assert "12 images, 3 classes" in res.output and "12x10 RGB (12)" in res.output
    _ok("data", "im2rec", str(p), str(image_tree))
    _ok("data", "cp", f"{p}.rec", "s3://bucket/train/")
    assert (settings.buckets_dir / "bucket" / "train" / "ds.rec").read_bytes() == Path(f"{p}.rec").read_bytes()
    _ok("data", "cp", "-r", str(image_tree), "s3://bucket/images")
    assert (settings.buckets_dir / "bucket" / "images" / "dog" / "3.png").is_file()
    _ok("data", "cp", "-r", "s3://bucket/images/", str(tmp_path / "back"))
    assert (tmp_path / "back" / "eel" / "0.png").read_bytes() == (image_tree / "eel" / "0.png").read_bytes()
    assert isinstance(_err("data", "cp", "s3://bucket/nope", str(tmp_path)), DataError)
