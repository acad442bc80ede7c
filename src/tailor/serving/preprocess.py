"""Request bodies -> uint8 (N,C,H,W) arrays shaped as the model's ``image_shape``.

SageMaker's image-classification rule: decode JPEG/PNG of any size, colour or grey, convert to the model's
channel count, resize to (h, w) WITHOUT keeping the aspect ratio. Normalisation lives inside the exported model,
so raw uint8 pixels go in. Bodies are capped at 6 MB (SageMaker's invocation limit) and decoded images at
``MAX_PIXELS`` so a small PNG cannot expand into gigabytes.

The answer stays SageMaker's whatever the input, but a 500x400 colour photo squeezed into a 28x28 grey model is
rarely what the user meant: ``InputCounts`` counts images whose size or colour mode differed from the model's
(the worker reports them; the endpoint's metrics show ``MismatchedInputs`` per minute).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from tailor.errors import PayloadTooLargeError, UnsupportedMediaTypeError, ValidationError

MAX_BODY_BYTES = 6 * 1024 * 1024
MAX_PIXELS = 40_000_000  # 40 Mpx: a 6 MB JPEG from a phone camera fits; a decompression bomb does not
IMAGE_TYPES = frozenset({"application/x-image", "image/jpeg", "image/png"})
JSONLINES_TYPES = frozenset({"application/jsonlines", "application/jsonl", "application/x-jsonlines"})
_FORMATS = ("JPEG", "PNG")


def media_type(header: str | None) -> str:
    """``"image/png; charset=x"`` -> ``"image/png"`` (lower case, no parameters)."""
    return (header or "").split(";", 1)[0].strip().lower()


def check_body(body: bytes) -> None:
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES} (6 MB)")
    if not body:
        raise ValidationError("request body is empty: send image bytes or JSON Lines")


@dataclass
class InputCounts:
    """Decoded images, and those whose size or colour mode had to change to fit the model (both: counted once)."""

    images: int = 0
    mismatched: int = 0
    resized: int = 0
    recoloured: int = 0

    def add(self, resized: bool, recoloured: bool) -> None:
        self.images += 1
        self.mismatched += resized or recoloured
        self.resized += resized
        self.recoloured += recoloured


def decode_image(data: bytes, image_shape: tuple[int, int, int], counts: InputCounts | None = None) -> np.ndarray:
    """One JPEG/PNG -> uint8 (C,H,W) for ``image_shape`` = (c, h, w); ``counts`` notes a size/colour mismatch."""
    c, h, w = image_shape
    try:
        img = Image.open(io.BytesIO(data), formats=_FORMATS)
        if img.width * img.height > MAX_PIXELS:
            raise ValidationError(f"image is {img.width}x{img.height}; the limit is {MAX_PIXELS} pixels")
        img.load()
    except UnidentifiedImageError:
        raise ValidationError("cannot decode the request body: it is not a JPEG or PNG image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValidationError(f"cannot decode the request body as a JPEG or PNG image ({exc})") from None
    mode = "L" if c == 1 else "RGB"
    if counts is not None:  # grey PNGs with an alpha channel or a palette still count as grey ("LA", "P" of greys)
        counts.add(img.size != (w, h), _channels(img) != c)
    if img.mode != mode:
        img = img.convert(mode)
    if img.size != (w, h):
        img = img.resize((w, h), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None, :, :] if c == 1 else arr.transpose(2, 0, 1)


def _channels(img: Image.Image) -> int:
    """1 for grey images (modes L, LA, I, I;16, F, 1, and palettes whose colours are all grey), else 3."""
    if img.mode in ("L", "LA", "I", "I;16", "F", "1"):
        return 1
    if img.mode == "P":
        palette = np.frombuffer(bytes(img.getpalette() or []), np.uint8).reshape(-1, 3)
        return 1 if (palette.max(1) == palette.min(1)).all() else 3
    return 3


def decode_jsonlines(body: bytes, image_shape: tuple[int, int, int], counts: InputCounts | None = None) -> np.ndarray:
    """JSON Lines batch: each line ``{"b64": "<base64 JPEG/PNG>"}`` or ``{"data": <uint8 array (C,H,W)>}``."""
    images = []
    for lineno, line in enumerate(body.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise ValidationError(f"JSON Lines line {lineno} is not JSON") from None
        if not isinstance(obj, dict):
            raise ValidationError(f"JSON Lines line {lineno}: expected an object with 'b64' or 'data'")
        if "b64" in obj:
            try:
                raw = base64.b64decode(obj["b64"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise ValidationError(f"JSON Lines line {lineno}: 'b64' is not valid base64") from None
            images.append(decode_image(raw, image_shape, counts))
        elif "data" in obj:
            try:
                arr = np.asarray(obj["data"], dtype=np.float64)
            except (TypeError, ValueError):
                raise ValidationError(f"JSON Lines line {lineno}: 'data' is not a numeric array") from None
            if arr.shape != tuple(image_shape) or arr.min(initial=0) < 0 or arr.max(initial=0) > 255:
                raise ValidationError(
                    f"JSON Lines line {lineno}: 'data' must be {list(image_shape)} values in 0..255, "
                    f"got shape {list(arr.shape)}"
                )
            images.append(arr.astype(np.uint8))
        else:
            raise ValidationError(f"JSON Lines line {lineno}: expected key 'b64' (base64 image) or 'data'")
    if not images:
        raise ValidationError("JSON Lines body holds no records")
    return np.stack(images)


def decode_body(
    content_type: str | None, body: bytes, image_shape: tuple[int, int, int], counts: InputCounts | None = None
) -> tuple[np.ndarray, bool]:
    """Returns (images (N,C,H,W), is_batch). Raises 413/415/400 as SageMaker does."""
    check_body(body)
    ctype = media_type(content_type)
    if ctype in IMAGE_TYPES:
        return decode_image(body, image_shape, counts)[None], False
    if ctype in JSONLINES_TYPES:
        return decode_jsonlines(body, image_shape, counts), True
    raise UnsupportedMediaTypeError(
        f"content type {ctype or '(none)'!r} is not supported: use application/x-image, image/jpeg, image/png "
        "or application/jsonlines"
    )
