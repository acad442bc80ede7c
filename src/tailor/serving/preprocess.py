"""Request bodies -> uint8 (N,C,H,W) arrays shaped as the model's ``image_shape``.

SageMaker's image-classification rule: decode JPEG/PNG of any size, colour or grey, convert to the model's
channel count, resize to (h, w) WITHOUT keeping the aspect ratio. Normalisation lives inside the exported model,
so raw uint8 pixels go in. Bodies are capped at 6 MB (SageMaker's invocation limit) and decoded images at
``MAX_PIXELS`` so a small PNG cannot expand into gigabytes.
"""

from __future__ import annotations

import base64
import binascii
import io
import json

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


def decode_image(data: bytes, image_shape: tuple[int, int, int]) -> np.ndarray:
    """One JPEG/PNG -> uint8 (C,H,W) for ``image_shape`` = (c, h, w)."""
    c, h, w = image_shape
    try:
        img = Image.open(io.BytesIO(data), formats=_FORMATS)
        if img.width * img.height > MAX_PIXELS:
            raise ValidationError(f"image is {img.width}x{img.height}; the limit is {MAX_PIXELS} pixels")
        img.load()
    except UnidentifiedImageError:
        raise ValidationError("cannot decode the request body: it is not a JPEG or PNG image") from None
    except Image.DecompressionBombError:  # Pillow's own check (> 179 Mpx) fires inside open(), before ours
        raise PayloadTooLargeError(f"image has more than {MAX_PIXELS} pixels (the limit)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValidationError(f"cannot decode the request body as a JPEG or PNG image ({exc})") from None
    mode = "L" if c == 1 else "RGB"
    if img.mode != mode:
        img = img.convert(mode)
    if img.size != (w, h):
        img = img.resize((w, h), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None, :, :] if c == 1 else arr.transpose(2, 0, 1)


def decode_jsonlines(body: bytes, image_shape: tuple[int, int, int]) -> np.ndarray:
    """JSON Lines batch: each line ``{"b64": "<base64 JPEG/PNG>"}`` or ``{"data": <uint8 array (C,H,W)>}``."""
    images = []
    for lineno, line in enumerate(body.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: '[' x 100000 exhausts the decoder's stack
            raise ValidationError(f"JSON Lines line {lineno} is not JSON") from None
        if not isinstance(obj, dict):
            raise ValidationError(f"JSON Lines line {lineno}: expected an object with 'b64' or 'data'")
        if "b64" in obj:
            try:
                raw = base64.b64decode(obj["b64"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise ValidationError(f"JSON Lines line {lineno}: 'b64' is not valid base64") from None
            images.append(decode_image(raw, image_shape))
        elif "data" in obj:
            try:
                arr = np.asarray(obj["data"], dtype=np.float64)
            except (TypeError, ValueError, OverflowError):  # OverflowError: a 400-digit integer
                raise ValidationError(f"JSON Lines line {lineno}: 'data' is not a numeric array") from None
            # NaN passes both bounds (every comparison with it is false): check finiteness first.
            if arr.shape != tuple(image_shape) or not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 255:
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


def decode_body(content_type: str | None, body: bytes, image_shape: tuple[int, int, int]) -> tuple[np.ndarray, bool]:
    """Returns (images (N,C,H,W), is_batch). Raises 413/415/400 as SageMaker does."""
    check_body(body)
    ctype = media_type(content_type)
    if ctype in IMAGE_TYPES:
        return decode_image(body, image_shape)[None], False
    if ctype in JSONLINES_TYPES:
        return decode_jsonlines(body, image_shape), True
    raise UnsupportedMediaTypeError(
        f"content type {ctype or '(none)'!r} is not supported: use application/x-image, image/jpeg, image/png "
        "or application/jsonlines"
    )
