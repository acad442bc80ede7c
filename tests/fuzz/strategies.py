"""Hypothesis strategies shared by every fuzz target: byte-level mutation of valid samples, raw bytes, JSON
values (nesting bombs included) and images whose headers claim any size.

Mutation follows the classic fuzzer moves (AFL's havoc stage): flip a bit, set a byte, insert or delete a run,
truncate, repeat a slice, overwrite with an "interesting" value (0, -1, 2^31, RecordIO's magic, separators). A
valid sample plus a few moves reaches the deep branches of a parser that raw random bytes almost never pass.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from typing import Any

import numpy as np
from hypothesis import strategies as st
from PIL import Image

RECORDIO_MAGIC = struct.pack("<I", 0xCED7230A)
# Values that sit on boundaries of length fields, flags, separators and encodings.
INTERESTING: list[bytes] = [
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\xff\xff\xff\x7f",
    b"\x00\x00\x00\x80",
    b"\x00\x00\x00\x20",  # RecordIO cflag 1 in the top bits of a little-endian length word
    b"\xff\xff\xff\x1f",  # RecordIO's largest 29-bit length
    RECORDIO_MAGIC,
    b"\t",
    b"\n",
    b"\r\n",
    b"\x00\n",
    b"..",
    b"../",
    b"/",
    b"\\",
    b"%2e%2e",
    b"\xc3\x28",  # invalid UTF-8
    b"\xed\xa0\x80",  # an encoded surrogate
    b"NaN",
    b"Infinity",
    b"-0",
    b"1e999",
    b"9" * 400,
    b"9" * 5000,  # past Python's 4300-digit int-from-string limit: json.loads raises a bare ValueError
    b'"',
    b"[" * 64,
    b"{",
    b"}",
    b"*",
]
_OPS = ("flip", "set", "insert", "delete", "truncate", "overwrite", "repeat")


@st.composite
def mutated(draw: st.DrawFn, samples: st.SearchStrategy[bytes], max_ops: int = 6) -> bytes:
    """A valid sample after 1..``max_ops`` havoc moves."""
    data = bytearray(draw(samples))
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(_OPS))
        pos = draw(st.integers(0, 1 << 20)) % (len(data) + 1)
        if op == "flip" and data:
            data[pos % len(data)] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos % len(data)] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(INTERESTING) | st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "truncate":
            del data[pos:]
        elif op == "overwrite":
            value = draw(st.sampled_from(INTERESTING))
            data[pos : pos + len(value)] = value
        elif op == "repeat":
            chunk = bytes(data[pos : pos + draw(st.integers(1, 64))])
            data[pos:pos] = chunk * draw(st.integers(1, 8))
    return bytes(data)


def fuzz_bytes(samples: list[bytes], *, raw_max: int = 512) -> st.SearchStrategy[bytes]:
    """Mostly mutated samples, some untouched (the happy path must hold too) and some raw bytes."""
    pick = st.sampled_from(samples)
    return st.one_of(mutated(pick), mutated(pick), mutated(pick), pick, st.binary(max_size=raw_max))


# -- JSON -------------------------------------------------------------------------------------------------
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=16,
)
# Deep nesting: the classic parser stack exhaustion ("[" x 100000 is 100 KB, well inside every body limit).
nesting_bombs = st.builds(
    lambda n, opener, tail: (opener * n + tail).encode(),
    st.sampled_from([1_000, 5_000, 100_000]) | st.integers(100, 200_000),
    st.sampled_from(["[", '{"a":', '{"Statement":[', '{"data":[']),
    st.sampled_from(["", "1", "]" * 3]),
)


def json_bytes(value: Any) -> bytes:
    # allow_nan: Python's json writes NaN/Infinity, which its reader accepts too: parsers must cope.
    return json.dumps(value, allow_nan=True).encode()


def text_lines(alphabet: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[bytes]:
    """Tab- and newline-separated text of any characters (encoded with surrogates passed, so not always UTF-8)."""
    cell = st.text(alphabet=alphabet, max_size=16) if alphabet is not None else st.text(max_size=16)
    line = st.lists(cell, max_size=5).map("\t".join)
    return st.lists(line, max_size=6).map(lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass"))


# -- images -----------------------------------------------------------------------------------------------
def image_bytes(fmt: str, size: tuple[int, int], mode: str, seed: int = 0, **save: Any) -> bytes:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode in ("L", "P") else (size[1], size[0], len(mode))
    img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), "L" if mode == "P" else mode)
    if mode == "P":
        img = img.convert("P")
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def sample_images() -> list[bytes]:
    """Small JPEGs and PNGs in the modes clients send: grey, RGB, RGBA, palette, progressive, CMYK, 16-bit."""
    out = [
        image_bytes("PNG", (10, 10), "L"),
        image_bytes("PNG", (12, 9), "RGB", 1),
        image_bytes("PNG", (8, 8), "RGBA", 2),
        image_bytes("PNG", (9, 9), "P", 3, transparency=0),
        image_bytes("JPEG", (10, 10), "L", 4),
        image_bytes("JPEG", (16, 12), "RGB", 5),
        image_bytes("JPEG", (16, 16), "RGB", 6, progressive=True),
        image_bytes("JPEG", (8, 8), "CMYK", 7),
    ]
    buf = io.BytesIO()
    Image.fromarray(np.arange(100, dtype=np.uint16).reshape(10, 10) * 600).save(buf, format="PNG")
    out.append(buf.getvalue())
    return out


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int, color_type: int, bit_depth: int, idat: bytes) -> bytes:
    """A PNG whose IHDR (with a correct CRC, so the reader believes it) claims any size; IDAT holds ``idat``."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(idat))
        + _png_chunk(b"IEND", b"")
    )


def jpeg_claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` with its SOF segment's height and width replaced (a decompression bomb's header)."""
    i = 2
    while i + 9 < len(jpeg):
        marker = jpeg[i + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return jpeg[: i + 5] + struct.pack(">HH", height, width) + jpeg[i + 9 :]
        i += 2 + ((jpeg[i + 2] << 8) | jpeg[i + 3])
    return jpeg


_SIDE_PNG = st.integers(0, 2**31 - 1) | st.sampled_from([0, 1, 28, 20_000, 65_535, 2**31 - 1])
_SIDE_JPEG = st.integers(0, 65_535) | st.sampled_from([0, 1, 28, 20_000, 65_535])


def header_images(samples: list[bytes]) -> st.SearchStrategy[bytes]:
    """Valid-looking headers claiming sizes from 0 to 2^31 pixels a side, over little or no pixel data."""
    jpegs = [s for s in samples if s[:3] == b"\xff\xd8\xff"]
    png = st.builds(
        png_claiming,
        _SIDE_PNG,
        _SIDE_PNG,
        st.sampled_from([0, 2, 3, 4, 6, 1, 7]),
        st.sampled_from([8, 16, 1, 2, 4, 3]),
        st.binary(max_size=256) | st.just(b"\0" * 4096),
    )
    jpeg = st.builds(jpeg_claiming, st.sampled_from(jpegs), _SIDE_JPEG, _SIDE_JPEG)
    return png | jpeg


def images(samples: list[bytes] | None = None) -> st.SearchStrategy[bytes]:
    """Every shape of image body: mutated samples, bomb headers, raw bytes."""
    samples = samples or sample_images()
    return fuzz_bytes(samples) | header_images(samples)
