"""The fast paths (simplejpeg decode/encode, the inline pass-through framing, the .rec decode loop) give what
the general Pillow paths give, and packed files get the usual file mode."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tailor.data import images as _img
from tailor.data import loader as _loader
from tailor.data.lst import LstItem, write_lst
from tailor.data.pack import PackOptions, pack_list
from tailor.data.recordio import MAGIC, IRHeader, RecordReader, encode_record, pack, unpack

from .conftest import make_tree


def _lst(tree: Path, out: Path) -> Path:
    files = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*.jpg"))
    return write_lst(out, [LstItem(i, f, (float(i % 3),)) for i, f in enumerate(files)])


def test_pass_through_records_match_encode_record_and_magic_payload_is_split(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "img", per_class=3, fmt="jpg")
    # A "JPEG" whose bytes hold the magic word at an aligned offset (24-byte header + 4): must be split.
    odd = tree / "cat" / "magic.jpg"
    odd.write_bytes(b"\xff\xd8\xff\xe0" + struct.pack("<I", MAGIC) + b"rest of it")
    lst = _lst(tree, tmp_path / "out" / "d.lst")
    res = pack_list(lst, tree, PackOptions(pass_through=True))
    assert res.written == 10 and not res.skipped
    files = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*.jpg"))
    expected = b"".join(
        encode_record(pack(IRHeader(0, float(i % 3), i, 0), (tree / f).read_bytes())) for i, f in enumerate(files)
    )
    assert res.rec.read_bytes() == expected
    with RecordReader(res.rec) as r:
        for i, f in enumerate(files):
            header, payload = unpack(r.read_idx(i))
            assert (header.id, header.label, payload) == (i, float(i % 3), (tree / f).read_bytes())


def test_packed_files_get_umask_mode_not_0600(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "img", per_class=1, fmt="jpg")
    lst = _lst(tree, tmp_path / "out" / "d.lst")
    old = os.umask(0o022)
    try:
        res = pack_list(lst, tree, PackOptions(pass_through=True))
    finally:
        os.umask(old)
    assert res.rec.stat().st_mode & 0o777 == 0o644
    assert res.idx.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("color", [1, 0, -1])
def test_reencode_fast_path_matches_pillow_path(tmp_path: Path, color: int, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = make_tree(tmp_path / "img", per_class=2, size=(20, 16), fmt="jpg")
    lst = _lst(tree, tmp_path / "fast" / "d.lst")
    opts = PackOptions(color=color, center_crop=True, resize=12, quality=90)
    fast = pack_list(lst, tree, opts, num_thread=2)
    monkeypatch.setattr(_img, "simplejpeg", None)
    slow_lst = _lst(tree, tmp_path / "slow" / "d.lst")
    slow = pack_list(slow_lst, tree, opts)
    with RecordReader(fast.rec) as a, RecordReader(slow.rec) as b:
        for ra, rb in zip(a, b, strict=True):
            (ha, pa), (hb, pb) = unpack(ra), unpack(rb)
            assert (ha.id, ha.label) == (hb.id, hb.label)
            ia, ib = Image.open(io.BytesIO(pa)), Image.open(io.BytesIO(pb))
            assert (ia.format, ia.mode, ia.size) == (ib.format, ib.mode, ib.size) == ("JPEG", ib.mode, (12, 12))
            # simplejpeg's encoder quantises with libjpeg-turbo's fast DCT: pixels close, not identical.
            diff = np.abs(np.asarray(ia, np.int16) - np.asarray(ib, np.int16))
            assert diff.mean() < 3


@pytest.mark.parametrize("channels", [1, 3])
def test_rec_decode_fast_loop_matches_pillow(tmp_path: Path, channels: int, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = make_tree(tmp_path / "img", per_class=4, size=(14, 12), fmt="jpg")
    lst = _lst(tree, tmp_path / "ch" / "train.lst")
    pack_list(lst, tree, PackOptions(pass_through=True))
    fast = _loader.load_channel(tmp_path / "ch", None, channels=channels, size=(10, 10))
    monkeypatch.setattr(_img, "simplejpeg", None)
    slow = _loader.load_channel(tmp_path / "ch", None, channels=channels, size=(10, 10))
    assert fast.images.shape == (12, channels, 10, 10)
    assert np.array_equal(fast.images, slow.images)
    assert np.array_equal(fast.labels, slow.labels)
