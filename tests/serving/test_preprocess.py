"""tailor.serving.preprocess: the codec fast path gives the Pillow path's pixels, and falls back for the rest."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tailor.data import images as _img
from tailor.errors import ValidationError
from tailor.serving import preprocess

RNG = np.random.default_rng(7)


def _encode(arr: np.ndarray, mode: str | None, fmt: str, **opts: object) -> bytes:
    buf = io.BytesIO()
    (Image.fromarray(arr, mode) if mode else Image.fromarray(arr)).save(buf, fmt, **opts)
    return buf.getvalue()


def _pillow(data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """What the endpoint answered before the fast path: Image.open, convert, resize."""
    c, h, w = shape
    img = Image.open(io.BytesIO(data)).convert("L" if c == 1 else "RGB")
    if img.size != (w, h):
        img = img.resize((w, h), Image.BILINEAR)
    arr = np.asarray(img)
    return arr[None] if c == 1 else arr.transpose(2, 0, 1)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _split_idat(png: bytes) -> bytes:
    """The same PNG with its image data in three IDAT chunks and a tEXt chunk before them."""
    ihdr_end = 8 + 25
    idat_len = int.from_bytes(png[ihdr_end : ihdr_end + 4], "big")
    assert png[ihdr_end + 4 : ihdr_end + 8] == b"IDAT"
    data = png[ihdr_end + 8 : ihdr_end + 8 + idat_len]
    thirds = [data[: len(data) // 3], data[len(data) // 3 : 2 * len(data) // 3], data[2 * len(data) // 3 :]]
    body = _chunk(b"tEXt", b"Comment\0split") + b"".join(_chunk(b"IDAT", t) for t in thirds)
    return png[:ihdr_end] + body + png[ihdr_end + 12 + idat_len :]


GREY = RNG.integers(0, 256, (28, 28), dtype=np.uint8)
COLOUR = RNG.integers(0, 256, (19, 23, 3), dtype=np.uint8)
PLAIN = {  # bodies the fast path decodes: (body, model shape)
    "grey png": (_encode(GREY, "L", "PNG"), (1, 28, 28)),
    "grey png, split IDAT + tEXt": (_split_idat(_encode(GREY, "L", "PNG")), (1, 28, 28)),
    "grey png, optimised": (_encode(GREY, "L", "PNG", optimize=True), (1, 28, 28)),
    "colour png": (_encode(COLOUR, "RGB", "PNG"), (3, 19, 23)),
    "grey jpeg": (_encode(GREY, "L", "JPEG", quality=90), (1, 28, 28)),
    "colour jpeg": (_encode(COLOUR, "RGB", "JPEG", quality=85), (3, 19, 23)),
}
OTHER = {  # bodies that take Pillow's path: other sizes, modes and depths, or a colour mismatch
    "grey png, resized": (_encode(GREY, "L", "PNG"), (1, 14, 20)),
    "colour jpeg, resized": (_encode(COLOUR, "RGB", "JPEG", quality=85), (3, 32, 32)),
    "palette png": (_encode(COLOUR[..., 0] // 16, "P", "PNG"), (1, 19, 23)),
    "grey + alpha png": (_encode(np.dstack([GREY, GREY]), "LA", "PNG"), (1, 28, 28)),
    "16-bit grey png": (_encode(GREY.astype(np.uint16) * 257, None, "PNG"), (1, 28, 28)),
    "colour png into a grey model": (_encode(COLOUR, "RGB", "PNG"), (1, 19, 23)),
    "grey jpeg into a colour model": (_encode(GREY, "L", "JPEG"), (3, 28, 28)),
    "colour jpeg into a grey model": (_encode(COLOUR, "RGB", "JPEG"), (1, 19, 23)),
}


@pytest.mark.parametrize("name", list(PLAIN))
def test_plain_images_decode_without_pillows_open_and_match_it(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    body, shape = PLAIN[name]
    want = _pillow(body, shape)
    monkeypatch.setattr(preprocess, "_open", lambda *a: pytest.fail("took Pillow's full path"))
    got = preprocess.decode_image(body, shape)
    assert got.dtype == np.uint8 and got.shape == shape
    assert np.array_equal(got, want)


@pytest.mark.parametrize("name", list(OTHER))
def test_other_images_take_pillows_path_with_the_same_pixels(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    body, shape = OTHER[name]
    opened: list[int] = []
    real = preprocess._open
    monkeypatch.setattr(preprocess, "_open", lambda *a: opened.append(1) or real(*a))
    counts = preprocess.InputCounts()
    assert np.array_equal(preprocess.decode_image(body, shape, counts=counts), _pillow(body, shape))
    assert opened == [1] and counts.images == 1


def test_counts_see_no_mismatch_for_a_plain_image_of_the_models_shape() -> None:
    counts = preprocess.InputCounts()
    preprocess.decode_image(PLAIN["grey png"][0], (1, 28, 28), counts=counts)
    preprocess.decode_image(OTHER["colour jpeg, resized"][0], (3, 32, 32), counts=counts)
    assert (counts.images, counts.mismatched, counts.resized, counts.recoloured) == (2, 1, 1, 0)


def test_a_bad_crc_or_a_cut_stream_is_not_decoded_by_the_fast_path() -> None:
    png = bytearray(PLAIN["grey png"][0])
    png[40] ^= 0xFF  # inside IDAT: its CRC no longer matches
    with pytest.raises(ValidationError):
        preprocess.decode_image(bytes(png), (1, 28, 28))
    cut = PLAIN["grey png"][0][:60]
    with pytest.raises(ValidationError, match="cannot decode"):
        preprocess.decode_image(cut, (1, 28, 28))


def test_a_jpeg_whose_frame_disagrees_with_the_checked_size_is_left_to_pillow() -> None:
    body = PLAIN["grey jpeg"][0]
    assert _img.plain_array(body, 1, (28, 28)) is not None
    assert _img.plain_array(body, 1, (1, 1)) is None
    png = PLAIN["grey png"][0]
    assert _img.plain_array(png, 1, (28, 28)) is not None and _img.plain_array(png, 1, (28, 27)) is None
