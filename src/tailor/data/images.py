"""Image decoding shared by the packer, the loader and inspect: simplejpeg (libjpeg-turbo) for JPEG, Pillow for
the rest and as the fallback for any JPEG simplejpeg refuses; no OpenCV.

simplejpeg decodes a 28×28 JPEG straight into numpy at ~50k images/s per core (Pillow's best path: ~18k on
the same busy core), with pixels identical to Pillow's (same libjpeg-turbo, islow DCT, fancy upsampling), and
it releases the GIL, so threads scale. For the Pillow path, opening through the format's plugin class
directly (picked by the first bytes) instead of ``Image.open`` skips Pillow's format probing: 28×28 JPEG
decode goes from ~11k to ~20k images/s per core here. Encoding is Pillow's libjpeg, driven directly
(:func:`encode_jpeg_array`): the bytes ``Image.save`` writes, at about twice its speed.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from typing import TYPE_CHECKING, Any

from PIL import Image, JpegImagePlugin, PngImagePlugin, UnidentifiedImageError

from tailor.errors import DataError

if TYPE_CHECKING:
    import numpy as np

# numpy and simplejpeg (which imports numpy) load on first use: ~0.12 s that `tailor data im2rec`, which
# needs neither, would otherwise spend before its first image. None: simplejpeg is missing (a declared
# dependency; without it everything still works through Pillow, slower). Tests set it to None.
_UNLOADED: Any = object()
simplejpeg: Any = _UNLOADED


def simplejpeg_or_none() -> Any:
    """The simplejpeg module, imported on the first call; None when it is missing (or a test set it so)."""
    global simplejpeg
    if simplejpeg is _UNLOADED:
        try:
            import simplejpeg as module
        except ImportError:
            module = None
        simplejpeg = module
    return simplejpeg


_JPEG = b"\xff\xd8\xff"
_PNG = b"\x89PNG\r\n\x1a\n"
_ENCODE_BUF = 1 << 16  # bytes per encoder call: a 28x28 JPEG fits in one, a 12 Mpx photo in a few dozen


def open_image(data: bytes, *, name: object = None) -> Image.Image:
    """A lazily decoded PIL image from encoded bytes; non-images raise :class:`DataError`."""
    try:
        if data[:3] == _JPEG:
            return JpegImagePlugin.JpegImageFile(io.BytesIO(data))
        if data[:8] == _PNG:
            return PngImagePlugin.PngImageFile(io.BytesIO(data))
        return Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"not a readable image ({err})", path=name) from None


def jpeg_info(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, components) from a baseline/progressive JPEG's SOF segment, or None if unusual."""
    i, n = 2, len(data)
    while i + 10 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack_from(">HH", data, i + 5)
            return w, h, data[i + 9]
        i += 2 + ((data[i + 2] << 8) | data[i + 3])
    return None


def decode_jpeg_image(data: bytes, mode: str) -> Image.Image | None:
    """libjpeg straight into an image of ``mode``, skipping JpegImageFile's Python marker parsing: for 28×28
    images that parsing is most of the cost (20k → 31k images/s per core). None means: take the normal path
    (CMYK, odd markers, corrupt data: the normal path then reports it)."""
    info = jpeg_info(data)
    if info is None or info[2] not in (1, 3) or min(info[:2]) < 1:
        return None
    core = _decode_core(data, mode, info[0], info[1])
    return None if core is None else Image.Image()._new(core)


def transcode_jpeg(data: bytes, mode: str | None, quality: int) -> bytes | None:
    """A JPEG decoded as ``mode`` ('L', 'RGB'; None: as stored) and encoded at ``quality``: the bytes
    ``encode_jpeg(decode_jpeg_image(data, mode), quality)`` gives, with no Pillow Image in between.

    For a 28×28 image the Python around the two libjpeg calls is as much as the calls themselves: driving the
    codec objects of Pillow's core directly measured 50-59 against 62-81 µs of CPU a grey 28×28 JPEG to RGB q95
    (20,000 images, 4 alternating runs, quiet machine).
    None: take the normal path (CMYK, odd markers, corrupt data)."""
    info = jpeg_info(data)
    if info is None or info[2] not in (1, 3) or min(info[:2]) < 1:
        return None
    w, h, comps = info
    mode = mode or ("L" if comps == 1 else "RGB")
    core = _decode_core(data, mode, w, h)
    return None if core is None else _encode_core(core, mode, w, h, quality)


def _decode_core(data: bytes, mode: str, w: int, h: int) -> Any:
    """libjpeg into a new core image of ``mode`` (what ``Image._getdecoder(mode, "jpeg", (mode, ""))`` builds)."""
    try:
        core = Image.core.new(mode, (w, h))
        return core if _decoded(Image.core.jpeg_decoder(mode, mode, ""), core, w, h, data) else None
    except Exception:  # private Pillow API: any surprise falls back to the public path
        return None


def _encode_core(core: Any, mode: str, w: int, h: int, quality: int) -> bytes | None:
    """Pillow's libjpeg encoder over a core image, configured as ``Image.save(fp, "JPEG", quality=q)``."""
    try:
        enc = Image.core.jpeg_encoder(mode, mode, *_jpeg_config(max(1, quality)))
        enc.setimage(core, (0, 0, w, h))
        parts = []
        while True:
            _, err, data = enc.encode(_ENCODE_BUF)
            parts.append(data)
            if err:
                break
    except Exception:  # noqa: BLE001 - private Pillow API: any surprise falls back to Image.save
        return None
    return b"".join(parts) if err > 0 else None


def jpeg_array(data: bytes | memoryview, channels: int) -> np.ndarray | None:
    """JPEG → uint8 (H, W, C) through simplejpeg (C = 1 or 3; 0 = as stored: 1 for grey JPEGs, else 3).

    None: not a JPEG, or one simplejpeg refuses (CMYK, corrupt, …): take the Pillow path, which decodes what
    it can and raises the usual :class:`DataError` for the rest. ``data`` may be a view into a mapped file.
    """
    sj = simplejpeg_or_none()
    if sj is None or data[:3] != _JPEG:
        return None
    try:
        if channels == 0:
            channels = 1 if sj.decode_jpeg_header(data)[2] == "Gray" else 3
        return sj.decode_jpeg(data, colorspace="GRAY" if channels == 1 else "RGB")
    except Exception:  # ValueError for bad data, others for odd colour spaces: Pillow decides
        return None


# Pillow's JPEG encoder configuration as ``Image.save(fp, "JPEG", quality=q)`` builds it with no other options
# (progressive, smooth, optimize, keep_rgb, streamtype, dpi, subsampling -1 = libjpeg's 4:2:0, restart
# blocks/rows, qtables, comment, extra, exif): the bytes are identical to Pillow's save (a test checks).
@functools.cache  # one tuple per quality: building it per image was ~1.4 µs of a ~55 µs transcode
def _jpeg_config(quality: int) -> tuple[Any, ...]:
    return (quality, False, 0, False, False, 0, (0, 0), -1, 0, 0, None, None, b"", b"")


def encode_jpeg_array(arr: np.ndarray, quality: int) -> bytes | None:
    """uint8 (H, W) or (H, W, 1|3) → the JPEG bytes ``PIL.Image.save(..., "JPEG", quality=quality)`` writes;
    None when the array is neither grey nor RGB or Pillow refuses it (see :func:`encode_jpeg`)."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        mode = "L"
    elif arr.ndim == 3 and arr.shape[2] == 3:
        mode = "RGB"
    else:
        return None
    import numpy as np

    return encode_jpeg(Image.fromarray(np.ascontiguousarray(arr), mode), quality)


def encode_jpeg(img: Image.Image, quality: int) -> bytes | None:
    """An 'L' or 'RGB' image → the bytes ``img.save(fp, "JPEG", quality=quality)`` writes, through Pillow's
    libjpeg encoder driven directly (no save-plugin machinery, no BytesIO).

    Measured per 28×28 RGB image (CPU, loaded 2-core VM, one run): Image.save 107-109 µs, this 47-70 µs.
    simplejpeg's encoder is faster still (20-26 µs) but its DCT is not libjpeg's default islow whatever its
    ``fastdct`` says: re-encoded Fashion-MNIST at q95 sat 0.70 grey levels (mean abs) from the source against
    Pillow's 0.22, so Tailor does not use it. None: a mode JPEG cannot hold, or a Pillow that refuses this use
    of its encoder (the caller then uses ``Image.save``).
    """
    if img.mode not in ("L", "RGB"):
        return None
    try:
        img.load()
    except Exception:  # noqa: BLE001 - a lazily opened image that fails to load: Image.save reports it
        return None
    return _encode_core(img.im, img.mode, *img.size, quality)


def decode_jpeg_array(data: bytes, channels: int) -> np.ndarray | None:
    """JPEG → uint8 (H, W) or (H, W, 3) numpy array, libjpeg writing straight into numpy memory.

    Skips both JpegImageFile's marker parsing and Image.tobytes (~30 µs of the ~65 µs a 28×28 image cost):
    45k grey / 38k RGB images/s per core here. None: not a plain JPEG; use :func:`decode`.
    """
    if data[:3] != _JPEG:
        return None
    arr = jpeg_array(data, channels)
    if arr is not None:
        return arr[:, :, 0] if channels == 1 else arr
    return libjpeg_array(bytes(data), channels)


def libjpeg_array(data: bytes, channels: int) -> np.ndarray | None:
    """A JPEG of 1 or 3 components decoded by Pillow's libjpeg into a new (H, W) or (H, W, 3) array: the pixels
    ``Image.open(...).convert(mode)`` gives for grey-to-grey and colour-to-colour. None: anything unusual."""
    info = jpeg_info(data)
    if info is None or info[2] not in (1, 3) or min(info[:2]) < 1:
        return None
    raw = "L" if channels == 1 else "RGB"
    return _decode_to_array(data, info[0], info[1], channels, "jpeg", (raw, ""))


def plain_array(data: bytes, channels: int, size: tuple[int, int]) -> np.ndarray | None:
    """A JPEG or plain PNG already of ``size`` (width, height) and ``channels`` (grey for 1, colour for 3), decoded
    by Pillow's codecs straight into an (H, W) or (H, W, 3) array: the pixels of ``Image.open(...).load()``, at
    16-29 us instead of 78-106 us of CPU for a 28x28 grey PNG through the endpoint's decode_body (4 alternating
    runs of 50,000). None: anything else, for the caller's Pillow path. ``size`` is the one the caller checked
    (its pixel budget): a JPEG frame or PNG header of another size is not decoded."""
    if data[:3] == _JPEG:
        info = jpeg_info(data)
        if info is None or info[:2] != size or info[2] != channels:
            return None
        return libjpeg_array(data, channels)
    if data[:8] != _PNG or data[16:24] != struct.pack(">II", *size):
        return None
    return png_array(data, channels)


def png_array(data: bytes, channels: int) -> np.ndarray | None:
    """A plain PNG (8-bit, grey for ``channels`` 1, RGB for 3, not interlaced) decoded by Pillow's zlib decoder
    into a new (H, W) or (H, W, 3) array, skipping PngImageFile's Python chunk reading and Image.tobytes: the
    pixels ``Image.open(...).load()`` gives (a test checks). None means: take the normal path (palettes, alpha,
    16-bit, interlaced, grey for 3 channels or colour for 1, a bad CRC or stream). The array is allocated at
    the IHDR's size: the caller bounds that first (``serving.preprocess`` checks it against its pixel budget)."""
    if data[:8] != _PNG or data[12:16] != b"IHDR" or len(data) < 33:
        return None
    w, h, depth, colour, method, filtering, interlace = struct.unpack_from(">IIBBBBB", data, 16)
    if depth != 8 or colour != (0 if channels == 1 else 2) or method or filtering or interlace or not (w and h):
        return None
    idat = _png_idat(data)
    return None if idat is None else _decode_to_array(idat, w, h, channels, "zip", ("L" if channels == 1 else "RGB",))


def _png_idat(data: bytes) -> bytes | None:
    """The joined IDAT payloads of a PNG whose chunks all check out (CRCs, lengths, IEND last, no critical
    chunk besides IHDR/PLTE/IDAT/IEND); None otherwise."""
    parts: list[bytes] = []
    pos, n = 8, len(data)
    while pos + 12 <= n:
        length = int.from_bytes(data[pos : pos + 4], "big")
        end = pos + 8 + length
        if end + 4 > n:
            return None
        kind = data[pos + 4 : pos + 8]
        if zlib.crc32(data[pos + 4 : end]) != int.from_bytes(data[end : end + 4], "big"):
            return None
        if kind == b"IDAT":
            parts.append(data[pos + 8 : end])
        elif kind == b"IEND":
            return b"".join(parts) if parts else None
        elif kind[0] < 0x61 and kind not in (b"IHDR", b"PLTE"):  # an unknown critical chunk (upper-case first)
            return None
        pos = end + 4
    return None


def _decode_to_array(data: bytes, w: int, h: int, channels: int, codec: str, args: tuple[str, ...]) -> Any:
    """Pillow's ``codec`` decoder writing straight into a new uint8 array: no Image, no copy out of one."""
    import numpy as np

    try:
        if channels == 1:
            buf = np.empty((h, w), np.uint8)
            core = Image.core.map_buffer(buf, (w, h), "raw", 0, ("L", 0, 1))
            dec = Image._getdecoder("L", codec, args)
        else:
            # Pillow keeps RGB as 4 bytes a pixel; decode into an RGBX view and drop X.
            buf = np.empty((h, w, 4), np.uint8)
            core = Image.core.map_buffer(buf, (w, h), "raw", 0, ("RGBX", 0, 1))
            dec = Image._getdecoder("RGBX", codec, args)
        if not _decoded(dec, core, w, h, data):
            return None
    except Exception:  # noqa: BLE001 - private Pillow API: any surprise falls back to the public path
        return None
    return buf if channels == 1 else buf[:, :, :3]


def _decoded(dec: Any, core: Any, w: int, h: int, data: bytes) -> bool:
    """Run a Pillow decoder over the whole of ``data`` into ``core``; False when it did not finish cleanly."""
    dec.setimage(core, (0, 0, w, h))
    n, err = dec.decode(data)
    if n >= 0:
        n, err = dec.decode(b"")
    return not (n >= 0 or err < 0)


def decode(data: bytes, channels: int, *, name: object = None) -> Image.Image:
    """Decode to mode 'L' (channels=1) or 'RGB' (channels=3); JPEGs decode straight to grey in libjpeg."""
    mode = "L" if channels == 1 else "RGB"
    if data[:3] == _JPEG:
        fast = decode_jpeg_image(data, mode)
        if fast is not None:
            return fast
    img = open_image(data, name=name)
    try:
        if img.format == "JPEG":
            img.draft(mode, img.size)  # colour conversion only; size kept so pixels match a full decode
        if img.mode != mode:
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                img = img.convert("RGBA")  # drop alpha as OpenCV's IMREAD_COLOR does: composite-free
            img = img.convert(mode)
        else:
            img.load()
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"cannot decode image ({err})", path=name) from None
    return img


def resize_shorter(img: Image.Image, resize: int) -> Image.Image:
    """Shorter side → ``resize`` keeping aspect (im2rec's arithmetic), bilinear like cv2.INTER_LINEAR."""
    w, h = img.size
    new = (resize, h * resize // w) if h > w else (w * resize // h, resize)
    if new == (w, h):
        return img
    return img.resize(new, Image.Resampling.BILINEAR)


def center_crop(img: Image.Image, size: tuple[int, int], *, name: object = None) -> Image.Image:
    """Crop the centre ``size`` = (height, width); an image smaller than that is an error (SageMaker's rule)."""
    w, h = img.size
    origin = crop_origin(h, w, size, name)
    if origin is None:
        return img
    top, left = origin
    return img.crop((left, top, left + size[1], top + size[0]))


def crop_origin(h: int, w: int, size: tuple[int, int], name: object = None) -> tuple[int, int] | None:
    """(top, left) of the centred ``size`` = (height, width) crop of an h x w image; None when it is that size.

    An image smaller than ``size`` is an error (SageMaker's rule), never padded."""
    th, tw = size
    if (h, w) == (th, tw):
        return None
    if h < th or w < tw:
        raise DataError(
            f"image is {h}x{w} (HxW), smaller than image_shape {th}x{tw}: resize it (--resize) or lower image_shape",
            path=name,
        )
    return (h - th) // 2, (w - tw) // 2


def to_chw(img: Image.Image) -> np.ndarray:
    import numpy as np

    arr = np.asarray(img)
    if arr.ndim == 2:
        return arr[None]
    return arr.transpose(2, 0, 1)
