"""The fast paths (simplejpeg decode, Pillow's encoder driven directly, the inline pass-through framing, the .rec
decode loop, forked .rec decoding) give what the general paths give, and packed files get the usual file mode."""

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
            assert pa == pb  # the same encoder (Pillow's libjpeg, islow DCT) driven directly: the same bytes


@pytest.mark.parametrize("color", [1, 0, -1])
def test_reencode_without_geometry_writes_image_saves_bytes(tmp_path: Path, color: int) -> None:
    """No crop, no resize: the JPEG is transcoded with no Pillow Image in between (images.transcode_jpeg);
    every record still holds exactly what Pillow's decode to ``mode`` and Image.save(quality=q) write."""
    tree = make_tree(tmp_path / "img", per_class=3, size=(28, 28), fmt="jpg")
    grey = np.random.default_rng(3).integers(0, 256, (28, 28), dtype=np.uint8)
    Image.fromarray(grey, "L").save(tree / "cat" / "grey.jpg", quality=90)  # as stored = 1 component
    lst = _lst(tree, tmp_path / "out" / "d.lst")
    res = pack_list(lst, tree, PackOptions(color=color, quality=93), num_thread=2)
    files = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*.jpg"))
    assert res.written == len(files) == 10 and not res.skipped
    with RecordReader(res.rec) as r:
        for i, f in enumerate(files):
            header, payload = unpack(r.read_idx(i))
            src = Image.open(tree / f)
            mode = {1: "RGB", 0: "L"}.get(color, src.mode)
            src.draft(mode, src.size)  # libjpeg's own colour conversion (grey = Y), as OpenCV's imread does
            buf = io.BytesIO()
            src.convert(mode).save(buf, "JPEG", quality=93)
            assert (header.id, payload) == (i, buf.getvalue()), f


def test_packs_in_two_threads_at_once_each_get_their_own_chunks(tmp_path: Path) -> None:
    """Forked workers read their chunks from the parent's memory: two packs running in threads of one process
    (two jobs in one server) must not see each other's lists."""
    import threading

    trees = [make_tree(tmp_path / f"img{k}", per_class=k + 2, size=(14 + k, 12), fmt="jpg") for k in range(2)]
    lists = [_lst(tree, tmp_path / f"out{k}" / "d.lst") for k, tree in enumerate(trees)]
    opts = PackOptions(quality=90)
    results: dict[int, bytes] = {}

    def run(k: int) -> None:
        # One chunk per image forces a pool with many tasks.
        results[k] = pack_list(lists[k], trees[k], opts, num_thread=2).rec.read_bytes()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("tailor.data.pack._CHUNK", 1)
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for k in range(2):
        alone = pack_list(_lst(trees[k], tmp_path / f"alone{k}" / "d.lst"), trees[k], opts, num_thread=1)
        assert results[k] == alone.rec.read_bytes() and len(results[k]) > 0


@pytest.mark.parametrize(("mode", "quality"), [("L", 95), ("RGB", 95), ("RGB", 75), ("L", 1), ("RGB", 100)])
def test_encode_jpeg_array_writes_pillows_bytes(mode: str, quality: int) -> None:
    rng = np.random.default_rng(quality)
    shape = (23, 31) if mode == "L" else (23, 31, 3)
    arr = rng.integers(0, 256, shape, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, "JPEG", quality=quality)
    assert _img.encode_jpeg_array(arr, quality) == buf.getvalue()
    if mode == "L":
        assert _img.encode_jpeg_array(arr[:, :, None], quality) == buf.getvalue()
    assert _img.encode_jpeg_array(rng.integers(0, 256, (4, 4, 2), dtype=np.uint8), quality) is None


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


def _write_rec(path: Path, n: int, corrupt: int | None = None) -> None:
    """``n`` random 10x12 grey JPEGs (one record each, label i % 7) as ``path``; record ``corrupt`` truncated."""
    from tailor.data.recordio import RecordWriter

    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with RecordWriter(path, path.with_suffix(".idx")) as w:
        for i in range(n):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (12, 10), dtype=np.uint8), "L").save(buf, "JPEG", quality=90)
            data = buf.getvalue()[:40] if i == corrupt else buf.getvalue()
            w.write_idx(i, pack(IRHeader(0, float(i % 7), i, 0), data))


@pytest.mark.parametrize("channels", [1, 3])
def test_forked_rec_decode_matches_threaded_bytes(
    tmp_path: Path, channels: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_rec(tmp_path / "ch" / "train.rec", 700)  # 3 chunks of 256
    threaded = _loader.load_channel(tmp_path / "ch", None, channels=channels, size=(12, 10))
    forked_calls: list[int] = []
    real = _loader._decode_forked

    def spy(entries: list, *args: object) -> None:
        forked_calls.append(len(entries))
        real(entries, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(_loader, "FORK_MIN_IMAGES", 1)
    monkeypatch.setattr(_loader, "_decode_forked", spy)
    forked = _loader.load_channel(tmp_path / "ch", None, channels=channels, size=(12, 10), cache_dir=tmp_path / "c")
    assert forked_calls == [700]
    assert forked.images.shape == (700, channels, 12, 10)
    assert forked.images.tobytes() == threaded.images.tobytes()
    assert np.array_equal(forked.labels, threaded.labels) and forked.labels[:8].tolist() == [0, 1, 2, 3, 4, 5, 6, 0]


def _sigterm_disposition(start: int, *_: object) -> tuple[int, list[bool], None]:
    """Stands in for a chunk decoder: reports whether SIGTERM kills this forked process outright."""
    import signal

    return start, [signal.getsignal(signal.SIGTERM) is signal.SIG_DFL], None


def test_forked_decoders_die_on_sigterm_under_the_trainers_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    """The training process handles SIGTERM by finishing its batch (and logging). Decoders forked from it must not
    inherit that: the pool ends them with SIGTERM, and a forked copy running the handler could deadlock on a lock
    another thread held at fork time (seen: the pool then waited for it forever)."""
    import signal

    monkeypatch.setattr(_loader, "_WORKERS", 2)
    monkeypatch.setattr(_loader, "_decode_forked_chunk", _sigterm_disposition)
    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # what the algorithm installs
    found: dict[int, list] = {}
    try:
        _loader._decode_forked([], np.zeros(1), {}, {}, [0, 1, 2, 3], 1, found, lambda n: None)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert found == {0: [True], 1: [True], 2: [True], 3: [True]}


def test_forked_rec_decode_reports_a_bad_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tailor.errors import DataError

    _write_rec(tmp_path / "ch" / "train.rec", 600, corrupt=450)
    monkeypatch.setattr(_loader, "FORK_MIN_IMAGES", 1)
    with pytest.raises(DataError) as info:
        _loader.load_channel(tmp_path / "ch", None, channels=1, size=(12, 10), cache_dir=tmp_path / "c")
    assert "train.rec" in str(info.value) and "\n" not in str(info.value)
    assert not [p for p in (tmp_path / "c").iterdir()]  # nothing half-written left in the cache
