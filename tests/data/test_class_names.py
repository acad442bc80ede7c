"""Class names travel with a .rec: im2rec writes <name>.classes.json, `tailor data cp` carries it, training reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tailor.cli.main import cli
from tailor.data.loader import load_channel
from tailor.errors import DataError
from tailor.settings import Settings
from tests.data.conftest import CLASSES


def _ok(*args: str) -> Result:
    res = CliRunner().invoke(cli, list(args))
    assert res.exit_code == 0, (res.output, res.exception)
    return res


def _pack(image_tree: Path, prefix: Path) -> None:
    _ok("data", "im2rec", str(prefix), str(image_tree), "--list", "--recursive", "--train-ratio", "0.75")
    out = _ok("data", "im2rec", str(prefix), str(image_tree), "--pass-through").stdout
    assert "ds_train.classes.json (class names)" in out and "ds_val.classes.json (class names)" in out


def test_packed_rec_uploaded_alone_trains_with_its_class_names(
    settings: Settings, image_tree: Path, tmp_path: Path
) -> None:
    prefix = tmp_path / "rec" / "ds"
    _pack(image_tree, prefix)
    assert json.loads((tmp_path / "rec" / "ds_train.classes.json").read_text()) == {"0": "cat", "1": "dog", "2": "eel"}
    # README's step 5: only the .rec is named; its .idx and class map go along.
    out = _ok("data", "cp", f"{prefix}_train.rec", "s3://my-bucket/ds/train/").stdout
    assert "copied 3 file(s)" in out and "ds_train.classes.json" in out
    channel = settings.buckets_dir / "my-bucket" / "ds" / "train"
    assert sorted(p.name for p in channel.iterdir()) == ["ds_train.classes.json", "ds_train.idx", "ds_train.rec"]
    data = load_channel(channel, "application/x-recordio", channels=3, size=(10, 12), cache_dir=settings.cache_dir)
    assert data.class_names == list(CLASSES) and len(data) == 9
    # A renamed copy renames its companions the same way.
    _ok("data", "cp", f"{prefix}_val.rec", "s3://my-bucket/ds/validation/val.rec")
    val = settings.buckets_dir / "my-bucket" / "ds" / "validation"
    assert sorted(p.name for p in val.iterdir()) == ["val.classes.json", "val.idx", "val.rec"]


def test_a_rec_without_a_map_still_trains_and_a_broken_map_is_an_error(image_tree: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "rec" / "ds"
    _pack(image_tree, prefix)
    channel = tmp_path / "channel"
    channel.mkdir()
    (channel / "ds.rec").write_bytes(Path(f"{prefix}_train.rec").read_bytes())
    assert load_channel(channel, None, channels=3, size=(10, 12)).class_names is None  # names by index
    (channel / "ds.classes.json").write_text('{"0": "cat", "2": "eel"}')
    with pytest.raises(DataError, match="keys must be the labels 0..K-1"):
        load_channel(channel, None, channels=3, size=(10, 12))
