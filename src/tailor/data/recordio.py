"""MXNet / dmlc-core RecordIO, byte-compatible both ways, without MXNet.

On disk each record is one or more *parts*::

    uint32 magic = 0xced7230a | uint32 lrecord = cflag << 29 | length | payload | zero pad to 4 bytes

A payload that contains the magic word at a 4-byte-aligned offset is split there (dmlc-core's writer does the
same, so a reader that scans for the magic can resynchronise): the magic is dropped, the parts are flagged
1 (first), 2 (middle), 3 (last) and the reader puts the magic back between them. cflag 0 is a whole record.

An image record's payload starts with ``IRHeader`` packed as ``IfQQ`` (flag, label, id, id2; 24 bytes,
little-endian); ``flag > 0`` means ``flag`` float32 labels follow the header and ``label`` is 0.

``.idx`` files are text, one ``key\\toffset`` per line, offset = byte position of the record's first part.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from tailor.errors import DataError

if TYPE_CHECKING:
    import numpy as np

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_HEAD = struct.Struct("<II")
_IR = struct.Struct("<IfQQ")
IR_SIZE = _IR.size  # 24
MAX_LENGTH = (1 << 29) - 1  # 29-bit length field


@dataclass(frozen=True)
class IRHeader:
    """MXNet's image-record header. ``label`` is a float, or a float32 array when the record is multi-label."""

    flag: int
    label: float | np.ndarray
    id: int
    id2: int = 0


def pack(header: IRHeader, payload: bytes) -> bytes:
    """Header + payload as MXNet's ``recordio.pack``: an array label sets ``flag`` to its length."""
    label = header.label
    if not isinstance(label, (int, float)):
        import numpy as np  # on first use: `tailor data im2rec` packs without numpy (~0.12 s of its start)

        if not isinstance(label, (np.floating, np.integer)):
            arr = np.asarray(label, dtype="<f4").ravel()
            return _IR.pack(arr.size, 0.0, int(header.id), int(header.id2)) + arr.tobytes() + payload
    return _IR.pack(int(header.flag), float(label), int(header.id), int(header.id2)) + payload


def unpack(record: bytes, *, path: object | None = None, where: str | None = None) -> tuple[IRHeader, bytes]:
    """Inverse of :func:`pack`. A record too short for its header raises :class:`DataError`."""
    if len(record) < IR_SIZE:
        raise DataError(f"record of {len(record)} bytes is shorter than the 24-byte IRHeader", path=path, where=where)
    flag, label, rid, rid2 = _IR.unpack_from(record, 0)
    if flag > 0:
        end = IR_SIZE + 4 * flag
        if len(record) < end:
            raise DataError(
                f"IRHeader declares {flag} labels but the record has {len(record)} bytes", path=path, where=where
            )
        import numpy as np

        labels = np.frombuffer(record, dtype="<f4", count=flag, offset=IR_SIZE).astype(np.float32)
        return IRHeader(flag, labels, rid, rid2), record[end:]
    return IRHeader(flag, label, rid, rid2), record[IR_SIZE:]


def encode_record(data: bytes) -> bytes:
    """The on-disk bytes of one record (all its parts and padding), exactly as dmlc-core writes them."""
    n = len(data)
    if n > MAX_LENGTH:
        raise DataError(f"record of {n} bytes exceeds RecordIO's 2^29-byte limit")
    out: list[bytes] = []
    start = 0
    # Only 4-byte-aligned occurrences count, and only inside the aligned prefix (dmlc-core's rule).
    lower = n & ~3
    pos = data.find(_MAGIC_BYTES, 0, lower) if lower else -1
    while pos != -1:
        if pos % 4 == 0:
            out.append(_HEAD.pack(MAGIC, ((1 if start == 0 else 2) << 29) | (pos - start)))
            out.append(data[start:pos])
            start = pos + 4
            pos = data.find(_MAGIC_BYTES, start, lower)
        else:
            pos = data.find(_MAGIC_BYTES, pos + 1, lower)
    out.append(_HEAD.pack(MAGIC, ((3 if start else 0) << 29) | (n - start)))
    out.append(data[start:])
    pad = (-n) & 3
    if pad:
        out.append(b"\0" * pad)
    return b"".join(out)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _AtomicFile:
    """A file written under a temporary name and renamed into place on success; removed on failure."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self.tmp = Path(tmp)
        # mkstemp makes 0600 files; a .rec is data to share, so give it the mode open() would (0666 & ~umask).
        os.fchmod(fd, 0o666 & ~_umask())
        self.fh: BinaryIO = os.fdopen(fd, "wb", buffering=1 << 20)

    def commit(self) -> None:
        self.fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


class RecordWriter:
    """Sequential (and, with ``idx_path``, indexed) writer; atomic: nothing appears unless :meth:`close` succeeds.

    Use as a context manager; an exception inside the ``with`` leaves neither the ``.rec`` nor the ``.idx``.
    """

    def __init__(self, rec_path: str | Path, idx_path: str | Path | None = None) -> None:
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path) if idx_path is not None else None
        self._rec = _AtomicFile(self.rec_path)
        self._idx_lines: list[str] = []
        self._pos = 0
        self.count = 0
        self._closed = False

    def tell(self) -> int:
        return self._pos

    def write(self, record: bytes) -> int:
        """Append one record; returns its byte offset."""
        pos = self._pos
        blob = encode_record(record)
        self._rec.fh.write(blob)
        self._pos += len(blob)
        self.count += 1
        return pos

    def write_idx(self, key: int | str, record: bytes) -> int:
        pos = self.write(record)
        self._idx_lines.append(f"{key}\t{pos}\n")
        return pos

    def write_block(self, blob: bytes, where: list[tuple[int | str, int]]) -> None:
        """Append several framed records at once; ``where`` = (key, offset inside ``blob``) per record."""
        base = self._pos
        self._rec.fh.write(blob)
        self._pos += len(blob)
        self.count += len(where)
        self._idx_lines.extend(f"{key}\t{base + off}\n" for key, off in where)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        idx = _AtomicFile(self.idx_path) if self.idx_path is not None else None
        try:
            if idx is not None:
                idx.fh.write("".join(self._idx_lines).encode())
        except BaseException:
            if idx is not None:
                idx.abort()
            self._rec.abort()
            raise
        self._rec.commit()
        if idx is not None:
            idx.commit()

    def abort(self) -> None:
        if not self._closed:
            self._closed = True
            self._rec.abort()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _walk_record(buf: memoryview, pos: int, path: Path, copy: bool) -> tuple[bytes | None, int]:
    """Check the parts of the record starting at ``pos``; returns (payload if ``copy``, offset after it)."""
    size = len(buf)
    parts: list[bytes] = []
    nparts = 0
    while True:
        if pos + 8 > size:
            raise DataError(
                f"short read: record header needs 8 bytes, {size - pos} left (truncated file?)",
                path=path,
                where=f"byte {pos}",
            )
        magic, lrec = _HEAD.unpack_from(buf, pos)
        if magic != MAGIC:
            raise DataError(
                f"wrong magic 0x{magic:08x} (expected 0x{MAGIC:08x}): not a RecordIO file or a bad offset",
                path=path,
                where=f"byte {pos}",
            )
        cflag, length = lrec >> 29, lrec & MAX_LENGTH
        if cflag > 3 or (cflag in (2, 3) and not nparts) or (cflag in (0, 1) and nparts):
            raise DataError(f"bad record flag {cflag} at part {nparts}", path=path, where=f"byte {pos}")
        end = pos + 8 + length
        padded = end + ((-length) & 3)
        if padded > size:
            raise DataError(
                f"short read or bad length: part of {length} bytes (+ padding) runs past the end of the file "
                f"({size} bytes)",
                path=path,
                where=f"byte {pos}",
            )
        if copy:
            parts.append(bytes(buf[pos + 8 : end]))
        nparts += 1
        pos = padded
        if cflag in (0, 3):
            break
    if not copy:
        return None, pos
    return (parts[0] if len(parts) == 1 else _MAGIC_BYTES.join(parts)), pos


def _read_record_at(buf: memoryview, pos: int, path: Path) -> tuple[bytes, int]:
    rec, nxt = _walk_record(buf, pos, path, True)
    assert rec is not None
    return rec, nxt


class RecordReader:
    """Reads a ``.rec`` (memory-mapped): sequential iteration, or random access by key through its ``.idx``.

    ``idx_path`` defaults to the ``.idx`` beside the ``.rec`` when it exists.
    """

    def __init__(self, rec_path: str | Path, idx_path: str | Path | None = None) -> None:
        self.path = Path(rec_path)
        if not self.path.is_file():
            raise DataError("RecordIO file not found", path=self.path)
        size = self.path.stat().st_size
        if size == 0:
            self._buf = memoryview(b"")
        else:
            import numpy as np

            self._arr = np.memmap(self.path, dtype=np.uint8, mode="r")
            self._buf = memoryview(self._arr)
        if idx_path is None:
            guess = self.path.with_suffix(".idx")
            idx_path = guess if guess.is_file() else None
        self.idx_path = Path(idx_path) if idx_path is not None else None
        self._index: dict[int | str, int] | None = None

    @property
    def index(self) -> dict[int | str, int]:
        """Key → offset, from the ``.idx`` (integer keys where they parse, as MXNet's ``key_type=int``)."""
        if self._index is None:
            if self.idx_path is None:
                raise DataError("no .idx file beside it: random access needs one", path=self.path)
            self._index = read_idx(self.idx_path)
        return self._index

    @property
    def keys(self) -> list[int | str]:
        return list(self.index)

    def __len__(self) -> int:
        return len(self.index)

    def read_at(self, offset: int) -> bytes:
        if not 0 <= offset < len(self._buf):
            raise DataError(f"offset {offset} outside the file ({len(self._buf)} bytes)", path=self.path)
        return _read_record_at(self._buf, offset, self.path)[0]

    def read_idx(self, key: int | str) -> bytes:
        try:
            offset = self.index[key]
        except KeyError:
            raise DataError(f"key {key!r} not in the index", path=self.idx_path) from None
        return self.read_at(offset)

    def __iter__(self) -> Iterator[bytes]:
        for _, rec in self.iter_with_offsets():
            yield rec

    def iter_with_offsets(self) -> Iterator[tuple[int, bytes]]:
        pos, size = 0, len(self._buf)
        while pos < size:
            rec, nxt = _read_record_at(self._buf, pos, self.path)
            yield pos, rec
            pos = nxt

    def offsets(self) -> list[int]:
        """Byte offsets of every record, checking every header but copying no payload."""
        out: list[int] = []
        pos, size = 0, len(self._buf)
        while pos < size:
            out.append(pos)
            pos = _walk_record(self._buf, pos, self.path, False)[1]
        return out

    def spans(self) -> tuple[list[int], list[int], list[int]]:
        """(record offset, payload start, payload end) lists for every record, checking every header.

        A multi-part record (payload split around a magic word) has start = end = -1: read it with
        :meth:`read_at`. Whole records are then plain slices of the mapped file, copied by nobody.
        """
        offs: list[int] = []
        starts: list[int] = []
        ends: list[int] = []
        buf, size, unpack_head = self._buf, len(self._buf), _HEAD.unpack_from
        pos = 0
        while pos < size:
            if pos + 8 <= size:
                magic, lrec = unpack_head(buf, pos)
                length = lrec & MAX_LENGTH
                end = pos + 8 + length
                nxt = end + ((-length) & 3)
                if magic == MAGIC and lrec >> 29 == 0 and nxt <= size:
                    offs.append(pos)
                    starts.append(pos + 8)
                    ends.append(end)
                    pos = nxt
                    continue
            # Multi-part or damaged: the careful walker accepts the first or names the byte that is wrong.
            offs.append(pos)
            starts.append(-1)
            ends.append(-1)
            pos = _walk_record(buf, pos, self.path, False)[1]
        return offs, starts, ends

    def view(self, start: int, end: int | None) -> memoryview:
        """Zero-copy view of bytes ``start:end`` of the mapped file (valid until :meth:`close`)."""
        return self._buf[start:end]

    def close(self) -> None:
        self._buf.release()
        self.__dict__.pop("_arr", None)

    def __enter__(self) -> RecordReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_idx(path: str | Path) -> dict[int | str, int]:
    """Parse a ``.idx`` file; a malformed line raises :class:`DataError` naming the line."""
    path = Path(path)
    out: dict[int | str, int] = {}
    try:
        text = path.read_bytes().decode()
    except OSError as err:
        raise DataError(f"cannot read index: {err.strerror}", path=path) from None
    except UnicodeDecodeError as err:
        raise DataError(f"index is not UTF-8 text (byte {err.start})", path=path) from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 2:
            raise DataError("expected 'key<TAB>offset'", path=path, where=f"line {n}")
        k, off = cols[0].strip(), cols[1].strip()
        try:
            key: int | str = int(k)
        except ValueError:
            key = k
        try:
            out[key] = int(off)
        except ValueError:
            raise DataError(f"offset {off!r} is not an integer", path=path, where=f"line {n}") from None
    return out


def write_records(
    rec_path: str | Path, records: list[tuple[int | str, bytes]], idx_path: str | Path | None = None
) -> None:
    """Write ``(key, record)`` pairs to a ``.rec`` (and ``.idx``), atomically."""
    with RecordWriter(rec_path, idx_path) as w:
        for key, rec in records:
            w.write_idx(key, rec)
