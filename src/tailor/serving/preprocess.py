"""Request bodies -> uint8 (N,C,H,W) arrays shaped as the model's ``image_shape``.

SageMaker's image-classification rule: decode JPEG/PNG of any size, colour or grey, convert to the model's
channel count, resize to (h, w) WITHOUT keeping the aspect ratio. Normalisation lives inside the exported model,
so raw uint8 pixels go in. Bodies are capped at 6 MB (SageMaker's invocation limit) and the pixels one request
may decode at ``max_pixels`` (setting ``max_image_pixels``), read from the PNG/JPEG header before any decoding:
a 388 KB PNG of 20000x20000 pixels would otherwise expand into 1.2 GB and seconds of CPU.

The answer stays SageMaker's whatever the input, but a 500x400 colour photo squeezed into a 28x28 grey model is
rarely what the user meant: ``InputCounts`` counts images whose size or colour mode differed from the model's
(the worker reports them; the endpoint's metrics show ``MismatchedInputs`` per minute).
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from tailor.data import images as _img
from tailor.errors import PayloadTooLargeError, TailorError, UnsupportedMediaTypeError, ValidationError
from tailor.json_input import parse_json

MAX_BODY_BYTES = 6 * 1024 * 1024
# 40 Mpx per request: a 6 MB JPEG from a phone camera fits; a decompression bomb does not (the default of the
# ``max_image_pixels`` setting; a JSON Lines batch shares one budget, which 6 MB of real photos stay under).
MAX_PIXELS = 40_000_000
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (SOF0-SOF15 except DHT 0xC4, JPG 0xC8 and DAC 0xCC) carry the frame's size.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
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


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk or a JPEG's start-of-frame marker, without decoding anything;
    None when the bytes are neither (the decoder then refuses them)."""
    if data[:8] == _PNG_SIGNATURE and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data):  # each step advances >= 2 bytes: bounded by the body's length
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
        elif marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        elif marker in _JPEG_SOF:
            if i + 9 > len(data):
                return None
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        else:
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _check_pixels(width: int, height: int, budget: int) -> None:
    if width * height > budget:
        raise PayloadTooLargeError(
            f"image is {width}x{height} = {width * height:,} pixels; the limit is {budget:,} pixels per request"
        )


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


def decode_image(
    data: bytes, image_shape: tuple[int, int, int], max_pixels: int = MAX_PIXELS, counts: InputCounts | None = None
) -> np.ndarray:
    """One JPEG/PNG -> uint8 (C,H,W) for ``image_shape`` = (c, h, w); over ``max_pixels`` is refused (413)
    from the header alone; ``counts`` notes a size/colour mismatch."""
    c, h, w = image_shape
    size = image_size(data)
    if size is not None:
        _check_pixels(*size, max_pixels)
    arr = _img.plain_array(data, c, size) if size == (w, h) else None
    if arr is not None:  # the model's own size and colour: nothing to count, convert or resize
        if counts is not None:
            counts.add(False, False)
        return arr[None, :, :] if c == 1 else arr.transpose(2, 0, 1)
    img = _open(data, max_pixels)
    if counts is not None:  # grey PNGs with an alpha channel or a palette still count as grey ("LA", "P" of greys)
        counts.add(img.size != (w, h), _channels(img) != c)
    mode = "L" if c == 1 else "RGB"
    if img.mode != mode:
        img = img.convert(mode)
    if img.size != (w, h):
        img = img.resize((w, h), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None, :, :] if c == 1 else arr.transpose(2, 0, 1)


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Pillow's full path: every format it reads among JPEG and PNG, with its errors mapped to 400/413."""
    try:
        img = Image.open(io.BytesIO(data), formats=_FORMATS)
        _check_pixels(img.width, img.height, max_pixels)  # the decoder's own reading of the header
        img.load()
    except Image.DecompressionBombError:
        raise PayloadTooLargeError("image is over the decoder's pixel limit (a decompression bomb)") from None
    except UnidentifiedImageError:
        raise ValidationError("cannot decode the request body: it is not a JPEG or PNG image") from None
    except TailorError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValidationError(f"cannot decode the request body as a JPEG or PNG image ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - any other decoder failure on client bytes is still the client's 400
        raise ValidationError(f"cannot decode the request body as a JPEG or PNG image ({type(exc).__name__})") from None
    return img


def _channels(img: Image.Image) -> int:
    """1 for grey images (modes L, LA, I, I;16, F, 1, and palettes whose colours are all grey), else 3."""
    if img.mode in ("L", "LA", "I", "I;16", "F", "1"):
        return 1
    if img.mode == "P":
        palette = np.frombuffer(bytes(img.getpalette() or []), np.uint8).reshape(-1, 3)
        return 1 if (palette.max(1) == palette.min(1)).all() else 3
    return 3


def decode_jsonlines(
    body: bytes, image_shape: tuple[int, int, int], max_pixels: int = MAX_PIXELS, counts: InputCounts | None = None
) -> np.ndarray:
    """JSON Lines batch: each line ``{"b64": "<base64 JPEG/PNG>"}`` or ``{"data": <uint8 array (C,H,W)>}``; the
    encoded images share one ``max_pixels`` budget."""
    images = []
    used = 0
    for lineno, line in enumerate(body.splitlines(), 1):
        if not line.strip():
            continue
        obj = parse_json(line, f"JSON Lines line {lineno}")
        if not isinstance(obj, dict):
            raise ValidationError(f"JSON Lines line {lineno}: expected an object with 'b64' or 'data'")
        if "b64" in obj:
            try:
                raw = base64.b64decode(obj["b64"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise ValidationError(f"JSON Lines line {lineno}: 'b64' is not valid base64") from None
            size = image_size(raw)
            used += size[0] * size[1] if size else 0
            if used > max_pixels:
                raise PayloadTooLargeError(
                    f"JSON Lines line {lineno}: the images so far hold {used:,} pixels; "
                    f"the limit is {max_pixels:,} pixels per request"
                )
            images.append(decode_image(raw, image_shape, max_pixels, counts))
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


def decode_body(
    content_type: str | None,
    body: bytes,
    image_shape: tuple[int, int, int],
    max_pixels: int = MAX_PIXELS,
    counts: InputCounts | None = None,
) -> tuple[np.ndarray, bool]:
    """Returns (images (N,C,H,W), is_batch). Raises 413/415/400 as SageMaker does."""
    check_body(body)
    ctype = media_type(content_type)
    if ctype in IMAGE_TYPES:
        return decode_image(body, image_shape, max_pixels, counts)[None], False
    if ctype in JSONLINES_TYPES:
        return decode_jsonlines(body, image_shape, max_pixels, counts), True
    raise UnsupportedMediaTypeError(
        f"content type {ctype or '(none)'!r} is not supported: use application/x-image, image/jpeg, image/png "
        "or application/jsonlines"
    )
