"""IDX files (MNIST / Fashion-MNIST), raw or gzip: ``00 00 <dtype> <ndim>``, ndim big-endian uint32 dims, data."""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from tailor.errors import DataError

_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(v).newbyteorder(">") if v != "u1" and v != "i1" else np.dtype(v): k for k, v in _DTYPES.items()}


def _raw(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            head = fh.read(2)
        if head == b"\x1f\x8b":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:  # a damaged deflate stream raises zlib.error, not OSError
        raise DataError(f"cannot read IDX file ({err})", path=path) from None


def read_idx(path: str | Path) -> np.ndarray:
    """The array in an IDX file (native byte order). A bad header or a short body raises :class:`DataError`."""
    path = Path(path)
    data = _raw(path)
    if len(data) < 4:
        raise DataError(f"file of {len(data)} bytes is too short for an IDX header", path=path, where="byte 0")
    z0, z1, code, ndim = data[0], data[1], data[2], data[3]
    if z0 or z1 or code not in _DTYPES or ndim == 0:
        raise DataError(
            f"bad IDX magic {data[:4].hex()} (expected 0000<dtype 08/09/0b/0c/0d/0e><ndim>)", path=path, where="byte 0"
        )
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"header declares {ndim} dimensions but the file ends", path=path, where="byte 4")
    dims = struct.unpack_from(f">{ndim}I", data, 4)
    dtype = np.dtype(_DTYPES[code])
    start = 4 + 4 * ndim
    need = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - start != need:
        raise DataError(
            f"header says shape {tuple(dims)} ({need} bytes of data) but the file holds {len(data) - start}",
            path=path,
            where=f"byte {start}",
        )
    arr = np.frombuffer(data, dtype=dtype, offset=start).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=False)


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as IDX (gzip when the name ends in .gz), atomically."""
    path = Path(path)
    arr = np.asarray(array)
    be = arr.dtype.newbyteorder(">") if arr.dtype.itemsize > 1 else arr.dtype
    code = _CODES.get(be)
    if code is None:
        raise DataError(f"IDX cannot store dtype {arr.dtype}", path=path)
    body = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    body += arr.astype(be, copy=False).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".gz":
        with gzip.open(tmp, "wb", compresslevel=6) as fh:
            fh.write(body)
    else:
        tmp.write_bytes(body)
    os.replace(tmp, path)
    return path
