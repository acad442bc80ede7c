"""Tailor's RecordIO against MXNet 1.9.1 itself, both ways (the reference interpreter runs small scripts)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tailor.cli.main import cli
from tailor.data.loader import load_channel
from tailor.data.lst import read_lst
from tailor.data.recordio import RecordReader, unpack

pytestmark = pytest.mark.slow  # the MXNet reference interpreter

READ_WITH_MXNET = r"""
import json, sys
import numpy as np, mxnet as mx
prefix, out = sys.argv[1], sys.argv[2]
r = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "r")
res = {"keys": [], "labels": [], "pixels": {}}
for k in r.keys:
    header, img = mx.recordio.unpack_img(r.read_idx(k))  # OpenCV: BGR
    res["keys"].append(int(k))
    res["labels"].append(np.atleast_1d(header.label).tolist())
    res["pixels"][str(k)] = img[:, :, ::-1].tolist()
it = mx.io.ImageRecordIter(path_imgrec=prefix + ".rec", data_shape=(3, 10, 12), batch_size=len(r.keys),
                           shuffle=False, round_batch=False, preprocess_threads=1)
batch = it.next()
res["iter_labels"] = batch.label[0].asnumpy().tolist()
res["iter_pixels"] = batch.data[0].asnumpy().astype("uint8").transpose(0, 2, 3, 1).tolist()
json.dump(res, open(out, "w"))
"""


def _run(mxnet_python: str, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([mxnet_python, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def test_tailor_rec_read_by_mxnet(image_tree: Path, tmp_path: Path, mxnet_python: str) -> None:
    prefix = tmp_path / "out" / "ds"
    runner = CliRunner()
    res = runner.invoke(cli, ["data", "im2rec", str(prefix), str(image_tree), "--list", "--recursive"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        cli, ["data", "im2rec", str(prefix), str(image_tree), "--encoding", ".png", "--num-thread", "2"]
    )
    assert res.exit_code == 0, res.output
    script = tmp_path / "read.py"
    script.write_text(READ_WITH_MXNET)
    _run(mxnet_python, str(script), str(prefix), str(tmp_path / "mx.json"))
    got = json.loads((tmp_path / "mx.json").read_text())
    items = read_lst(f"{prefix}.lst")
    assert got["keys"] == [it.index for it in items]
    assert [lab[0] for lab in got["labels"]] == [it.label for it in items]
    assert got["iter_labels"] == [it.label for it in items]
    for n, it in enumerate(items):
        src = np.asarray(Image.open(image_tree / it.path).convert("RGB"))
        np.testing.assert_array_equal(np.asarray(got["pixels"][str(it.index)], dtype=np.uint8), src)
        np.testing.assert_array_equal(np.asarray(got["iter_pixels"][n], dtype=np.uint8), src)


def test_mxnet_im2rec_read_by_tailor(image_tree: Path, tmp_path: Path, mxnet_python: str) -> None:
    im2rec = _run(mxnet_python, "-c", "import mxnet, os; print(os.path.dirname(mxnet.__file__))").stdout.strip()
    tool = str(Path(im2rec) / "tools" / "im2rec.py")
    prefix = tmp_path / "mx" / "ds"
    prefix.parent.mkdir()
    _run(mxnet_python, tool, str(prefix), str(image_tree), "--list", "--recursive", "--train-ratio", "0.75")
    # Tailor's --list makes the very same files (same walk, labels, shuffle and split).
    ours = tmp_path / "ours" / "ds"
    res = CliRunner().invoke(
        cli, ["data", "im2rec", str(ours), str(image_tree), "--list", "--recursive", "--train-ratio", "0.75"]
    )
    assert res.exit_code == 0, res.output
    for suffix in ("_train.lst", "_val.lst"):
        assert Path(f"{ours}{suffix}").read_text() == Path(f"{prefix}{suffix}").read_text()
    _run(mxnet_python, tool, str(prefix), str(image_tree), "--encoding", ".png", "--num-thread", "2")
    for split in ("train", "val"):
        items = read_lst(f"{prefix}_{split}.lst")
        with RecordReader(f"{prefix}_{split}.rec") as r:
            for it in items:
                header, payload = unpack(r.read_idx(it.index))
                assert header.label == it.label and header.id == it.index
                src = np.asarray(Image.open(image_tree / it.path).convert("RGB"))
                np.testing.assert_array_equal(np.asarray(Image.open(__import__("io").BytesIO(payload))), src)
    # and through the training cache: same labels, same pixels, class names from the .lst beside the .rec
    channel = tmp_path / "channel"
    channel.mkdir()
    for ext in (".rec", ".idx", ".lst"):
        (channel / f"train{ext}").write_bytes(Path(f"{prefix}_train{ext}").read_bytes())
    data = load_channel(channel, "application/x-recordio", channels=3, size=(10, 12), cache_dir=tmp_path / "cache")
    items = read_lst(channel / "train.lst")
    assert data.class_names == ["cat", "dog", "eel"]
    np.testing.assert_array_equal(data.labels, [it.label for it in items])
    for n, it in enumerate(items):
        src = np.asarray(Image.open(image_tree / it.path).convert("RGB")).transpose(2, 0, 1)
        np.testing.assert_array_equal(data.images[n], src)


MULTI_LABEL_MXNET = r"""
import sys, json, numpy as np, mxnet as mx
r = mx.recordio.MXIndexedRecordIO(sys.argv[1] + ".idx", sys.argv[1] + ".rec", "r")
print(json.dumps([[float(x) for x in np.atleast_1d(mx.recordio.unpack(r.read_idx(k))[0].label)] for k in r.keys]))
"""


def test_pack_label_multi_label_read_by_mxnet(image_tree: Path, tmp_path: Path, mxnet_python: str) -> None:
    lst = tmp_path / "ml.lst"
    rows = [(0, (1.0, 0.0, 1.0), "cat/0.png"), (1, (0.0, 1.0, 0.0), "dog/1.png")]
    lst.write_text("".join(f"{i}\t" + "\t".join(f"{v:f}" for v in labs) + f"\t{p}\n" for i, labs, p in rows))
    res = CliRunner().invoke(cli, ["data", "im2rec", str(tmp_path / "ml"), str(image_tree), "--pack-label"])
    assert res.exit_code == 0, res.output
    script = tmp_path / "ml.py"
    script.write_text(MULTI_LABEL_MXNET)
    out = _run(mxnet_python, str(script), str(tmp_path / "ml")).stdout
    assert json.loads(out) == [list(labs) for _, labs, _ in rows]
