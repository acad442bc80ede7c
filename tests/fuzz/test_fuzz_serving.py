"""Invocation bodies on arbitrary bytes: JPEG/PNG (headers claiming any size) and JSON Lines decode to the
model's shape or raise ValidationError (400/413/415), never anything the worker would not answer."""

from __future__ import annotations

import pytest
from hypothesis import example, given

from tailor.errors import PayloadTooLargeError
from tests.fuzz.strategies import png_claiming, sample_images
from tests.fuzz.targets import BY_NAME, jsonlines_samples

IMAGE, JSONLINES = BY_NAME["image"], BY_NAME["jsonlines"]


def test_valid_samples_decode() -> None:
    for body in sample_images():
        IMAGE.run(("image/png", body, (3, 16, 16)))
        IMAGE.run(("application/x-image", body, (1, 28, 28)))
    for body in jsonlines_samples():
        JSONLINES.run((body, (1, 4, 4)))


def test_decompression_bomb_header_is_413() -> None:
    with pytest.raises(PayloadTooLargeError):
        IMAGE.run(("image/png", png_claiming(20_000, 20_000, 2, 8, b"\0" * 64), (1, 28, 28)))


@given(IMAGE.strategy)
@example(("image/png", png_claiming(20_000, 20_000, 2, 8, b"\0" * 64), (1, 28, 28)))  # was DecompressionBombError
def test_image_bodies(case: tuple[str, bytes, tuple[int, int, int]]) -> None:
    IMAGE.check(case)


@given(JSONLINES.strategy)
@example((b"[" * 100_000, (1, 4, 4)))  # was RecursionError
@example((b'{"data": [[[' + b"9" * 400 + b"]]]}", (1, 4, 4)))  # was OverflowError
@example((b'{"data": [[' + b"[NaN, 0, 0, 0], " + b"[0, 0, 0, 0], " * 2 + b"[0, 0, 0, 0]]]}", (1, 4, 4)))  # NaN: taken
def test_jsonlines_bodies(case: tuple[bytes, tuple[int, int, int]]) -> None:
    JSONLINES.check(case)
