from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from tailor.data.recordio import (
    MAGIC,
    IRHeader,
    RecordReader,
    RecordWriter,
    encode_record,
    pack,
    read_idx,
    unpack,
)
from tailor.errors import DataError

M = struct.pack("<I", MAGIC)
PAYLOADS = [b"abc", M, b"x" * 4 + M + b"yy", M + M + b"z", b"12" + M + b"34", b"", b"A" * 8 + M, bytes(range(256)) * 9]


def _write(tmp_path: Path, payloads: list[bytes]) -> Path:
    with RecordWriter(tmp_path / "t.rec", tmp_path / "t.idx") as w:
        for i, p in enumerate(payloads):
            w.write_idx(i, pack(IRHeader(0, float(i), i, 0), p))
    return tmp_path / "t.rec"


def test_round_trip_sequential_and_by_key(tmp_path: Path) -> None:
    rec = _write(tmp_path, PAYLOADS)
    with RecordReader(rec) as r:
        seq = [unpack(x) for x in r]
        assert [p for _, p in seq] == PAYLOADS
        assert [h.label for h, _ in seq] == [float(i) for i in range(len(PAYLOADS))]
        for key in reversed(r.keys):
            h, p = unpack(r.read_idx(key))
            assert (h.id, p) == (key, PAYLOADS[key])
        assert len(r.offsets()) == len(PAYLOADS)


def test_multipart_framing_splits_on_aligned_magic_only() -> None:
    # Magic at aligned offset 4 → two parts (cflag 1 then 3); at offset 2 (unaligned) → one part.
    blob = encode_record(b"abcd" + M + b"ef")
    first = struct.unpack_from("<II", blob, 0)
    assert first == (MAGIC, (1 << 29) | 4)
    second = struct.unpack_from("<II", blob, 12)
    assert second == (MAGIC, (3 << 29) | 2)
    assert len(blob) % 4 == 0
    whole = encode_record(b"ab" + M + b"cd")
    assert struct.unpack_from("<II", whole, 0) == (MAGIC, 8) and len(whole) == 16
    three = encode_record(M + M)
    flags = [struct.unpack_from("<II", three, o)[1] >> 29 for o in (0, 8, 16)]
    assert flags == [1, 2, 3]


def test_multi_label_header_round_trip() -> None:
    labels = np.array([0.0, 1.0, 0.5, 7.0], dtype=np.float32)
    rec = pack(IRHeader(0, labels, 42, 3), b"img")
    assert len(rec) == 24 + 16 + 3
    h, p = unpack(rec)
    assert h.flag == 4 and h.id == 42 and h.id2 == 3 and p == b"img"
    np.testing.assert_array_equal(h.label, labels)


def _corrupt(tmp_path: Path, mutate) -> Path:  # noqa: ANN001
    rec = _write(tmp_path, [b"hello world!", b"second"])
    data = bytearray(rec.read_bytes())
    rec.write_bytes(bytes(mutate(data)))
    return rec


@pytest.mark.parametrize(
    ("mutate", "expect"),
    [
        (lambda d: d[:1] + b"\x00\x00\x00" + d[4:], "wrong magic"),  # first record's magic
        (lambda d: d[:4] + struct.pack("<I", 10_000) + d[8:], "bad length"),  # length past EOF
        (lambda d: d[:-3], "short read"),  # truncated payload of the last record
        (lambda d: d[:-1], "short read"),  # truncated padding
        (lambda d: d + b"\x0a\x23", "short read"),  # 2 stray bytes after the last record
        (lambda d: d[:4] + struct.pack("<I", (2 << 29) | 36) + d[8:], "bad record flag"),  # middle part first
    ],
)
def test_corrupt_files_raise_data_error_with_offset(tmp_path: Path, mutate, expect: str) -> None:  # noqa: ANN001
    rec = _corrupt(tmp_path, mutate)
    with pytest.raises(DataError) as err, RecordReader(rec) as r:
        list(r)
    assert expect in str(err.value) and str(rec) in str(err.value) and "byte " in str(err.value)
    with pytest.raises(DataError), RecordReader(rec) as r:
        r.offsets()


def test_read_idx_bad_offset_and_bad_lines(tmp_path: Path) -> None:
    rec = _write(tmp_path, [b"a", b"b"])
    with RecordReader(rec) as r, pytest.raises(DataError, match="wrong magic"):
        r.read_at(4)
    (tmp_path / "t.idx").write_text("0\t0\nbroken line\n")
    with pytest.raises(DataError, match="line 2"):
        read_idx(tmp_path / "t.idx")
    with pytest.raises(DataError, match="shorter than the 24-byte"):
        unpack(b"short")


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), RecordWriter(tmp_path / "x.rec", tmp_path / "x.idx") as w:
        w.write_idx(0, b"data")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
