"""``.lst`` → ``.rec`` + ``.idx`` with MXNet ``im2rec.py``'s options and semantics, on simplejpeg + Pillow.

Every ``PREFIX*.lst`` beside PREFIX is packed into a ``.rec``/``.idx`` of the same stem, in list order, with
the label → class-folder map as ``<stem>.classes.json`` (``tailor.data.classes``) when the list has one; each
record is ``IRHeader(0, label, index, 0)`` + the image (``--pack-label`` with 2+ label columns stores them all).
Pixels: decode with ``color`` (1 colour, 0 grey, -1 as stored), ``center_crop`` to a square, ``resize`` the
shorter side, encode ``.jpg`` (``quality`` 1-100) or ``.png`` (compression min(quality, 9)). ``pass_through``
copies the file's bytes. Unreadable images are skipped with a warning and counted, as im2rec does.

Speed: ``--pass-through`` runs one tight loop in-process (files opened relative to the root's descriptor,
records framed without joining header and payload; a second thread measured no faster). Re-encoding runs
``num_thread`` forked worker processes (capped at the cores): a JPEG is decoded by libjpeg straight into a
Pillow image of the wanted mode and encoded by Pillow's libjpeg encoder driven directly (``images.encode_jpeg``:
the exact bytes ``Image.save`` writes, islow DCT, 4:2:0); PNG output, other inputs and anything unusual take the
plain Pillow path. simplejpeg's encoder, used before, is 2-3x faster per image but its DCT is not islow whatever
its ``fastdct`` says: re-encoded 28×28 pixels sat a mean 0.70-0.8 grey levels from the source at q95 against
0.22 for Pillow and OpenCV (MXNet's im2rec).

Measured contract (``python -m bench data --only=pack``, 70,000 Fashion-MNIST JPEGs, vs MXNet 1.9.1 ``im2rec.py
--num-thread 2`` in the same run, 3 alternating runs, wall time including interpreter start).
Round four, quiet: the forked workers run under ``tailor.data.forked`` instead of ``multiprocessing.Pool``
(whose worker-handler thread spun on unread results, ~0.55 s of a 7.5 s pack's CPU): re-encode 3.67 s vs
12.20 s (3.3x; pairs 3.6x / 3.2x / 3.3x; load 1.0 -> 2.3) and 3.98 s vs 12.70 s (3.2x; load 2.3 -> 3.0); the
previous code in the same hour 3.89 s vs 11.64 s (3.0x); the old and new `tailor data im2rec` alone, 15
alternating pairs, median 4.54 s vs 4.14 s (new faster in 12). Output byte-identical to im2rec's (md5), the .idx
too. Goal 3x: met.
Round three, quiet (load average 0.7 before / 2.1 after): re-encode .jpg q95 4.63 s vs 13.26 s (2.9x; runs
4.32-4.94 vs 12.72-14.11 s, pairs 2.7x / 3.1x / 2.9x; 6.73 vs 15.16 s = 2.3x the same day before this round),
pass-through 2.33 s vs 7.88 s (3.4x); the re-encoded .rec is byte-identical to im2rec's. The re-encode is now
~0.7 s of serial start (interpreter, imports, one parse of the list) and two workers at ~100 µs an image each:
35 % CPython, 32 % libjpeg, 20 % kernel in perf. Goal 3x: just short in the median. Again after numpy and
simplejpeg became lazy imports (load 1.2 -> 2.8): re-encode 4.62 vs 13.31 s (2.9x; pairs 3.0x / 2.9x / 2.8x),
pass-through 2.01 vs 8.37 s (4.2x).
Round two, at load average 15-17 from other jobs, so absolute figures are ~10x a quiet run's and the spread is
wide:
  fidelity (re-encode .jpg q95, 5,000 images): Tailor's bytes equal Image.save's 5000/5000; mean abs pixel
  difference to im2rec's (OpenCV) output 0.000, to the source 0.219 (im2rec's 0.219). Goal <= 0.3: met.
  pass-through:        53.7 s vs 123.0 s (2.3x; runs 39-71 s vs 74-147 s)
  re-encode .jpg q95: 101.9 s vs 77.4 s  (0.8x; runs 61-159 s vs 39-96 s); with simplejpeg's encoder in an
  earlier run at the same load: 72.6 s vs 69.3 s (1.0x).
  One run at load average 4.1 before / 7.4 after: pass-through 5.04 s vs 16.22 s (3.2x); re-encode 22.56 s vs
  24.08 s (1.1x), fidelity as above. Goal 3x for re-encode: not met. Why (CPU per 28×28 grey JPEG → RGB q95,
  alternating processes): OpenCV's imdecode + imencode, im2rec's path, 38-54 µs; ours 93-111 µs, of which
  Pillow's libjpeg decode ~37-58 µs and encode ~37-47 µs: with the same two processes, per-image work bounds it.
  Round one (load ~5): pass-through 1.78 s vs 7.09 s (4.0x); re-encode with simplejpeg 6.59 s vs 11.33 s (1.7x).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from tailor.data import images as _img
from tailor.data.classes import write_class_map
from tailor.data.forked import fork_map
from tailor.data.lst import LstItem, class_names_from_items, read_lst
from tailor.data.recordio import _HEAD, _IR, MAGIC, MAX_LENGTH, IRHeader, RecordWriter, encode_record, pack
from tailor.errors import DataError, ValidationError

_CHUNK = 256
_READ = 1 << 20
_MAGIC = MAGIC.to_bytes(4, "little")
_JPEG = b"\xff\xd8\xff"
_PNG = b"\x89PNG\r\n\x1a\n"
_PAD = (b"", b"\0", b"\0\0", b"\0\0\0")


@dataclass(frozen=True)
class PackOptions:
    pass_through: bool = False
    resize: int = 0
    center_crop: bool = False
    quality: int = 95
    encoding: str = ".jpg"
    color: int = 1
    pack_label: bool = False

    def validate(self) -> PackOptions:
        if self.encoding not in (".jpg", ".png"):
            raise ValidationError(f"--encoding must be .jpg or .png, got {self.encoding!r}")
        if self.color not in (-1, 0, 1):
            raise ValidationError(f"--color must be -1, 0 or 1, got {self.color}")
        if self.resize < 0:
            raise ValidationError("--resize must be >= 0")
        if not 0 <= self.quality <= 100:
            raise ValidationError("--quality must be in 0..100 (JPEG) or 0..9 (PNG compression)")
        return self


@dataclass
class PackResult:
    lst: Path
    rec: Path
    idx: Path
    classes: Path | None = None  # <stem>.classes.json, when the list's paths name class folders
    written: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image path, reason)


def find_lists(prefix: str | Path) -> list[Path]:
    """im2rec's rule: every ``*.lst`` in PREFIX's folder whose path starts with PREFIX (or all in a folder)."""
    prefix = os.path.abspath(prefix)
    folder = prefix if os.path.isdir(prefix) else os.path.dirname(prefix)
    if not os.path.isdir(folder):
        raise DataError("folder of the prefix does not exist", path=folder)
    return sorted(
        Path(folder, f)
        for f in os.listdir(folder)
        if f.endswith(".lst") and os.path.join(folder, f).startswith(prefix) and os.path.isfile(os.path.join(folder, f))
    )


def _header(item: LstItem, opts: PackOptions) -> IRHeader:
    if len(item.labels) > 1 and opts.pack_label:
        return IRHeader(0, list(item.labels), item.index, 0)  # type: ignore[arg-type]
    return IRHeader(0, item.labels[0], item.index, 0)


def _transform(data: bytes, opts: PackOptions, name: str) -> bytes:
    if opts.color in (0, 1):
        img = _img.decode(data, 3 if opts.color == 1 else 1, name=name)
    else:
        img = _img.open_image(data, name=name)
    try:
        if opts.color == 1:
            img = img.convert("RGB") if img.mode != "RGB" else img
        elif opts.color == 0:
            img = img.convert("L") if img.mode != "L" else img
        img.load()
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"cannot decode image ({err})", path=name) from None
    img = _geometry(img, opts)
    buf = io.BytesIO()
    if opts.encoding == ".png":
        img.save(buf, "PNG", compress_level=min(opts.quality, 9))
    else:
        if img.mode not in ("L", "RGB"):
            img = img.convert("RGB")  # JPEG has no alpha channel
        img.save(buf, "JPEG", quality=max(1, opts.quality))
    return buf.getvalue()


def _geometry(img: Image.Image, opts: PackOptions) -> Image.Image:
    """``center_crop`` to a square, then ``resize`` the shorter side (im2rec's order)."""
    if opts.center_crop:
        w, h = img.size
        side = min(w, h)
        top, left = (h - side) // 2, (w - side) // 2
        img = img.crop((left, top, left + side, top + side))
    if opts.resize:
        img = _img.resize_shorter(img, opts.resize)
    return img


def _looks_like_image(data: bytes) -> bool:
    if data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n":
        return True
    try:
        Image.open(io.BytesIO(data))  # header only
        return True
    except Exception:
        return False


def _read_file(path: str) -> bytes:
    """The file's bytes through os.open/os.read: half the cost of open().read() for 70k small files."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, _READ)
        if len(data) == _READ:  # a big file: read the rest
            parts = [data]
            while chunk := os.read(fd, _READ):
                parts.append(chunk)
            data = b"".join(parts)
        return data
    finally:
        os.close(fd)


def _read_rel(rootfd: int, rel: str, base: str) -> bytes:
    """A file under the root by its relative path, opened against the root's descriptor: no walk from / per
    image (open+read 9-11 against 11-15 µs a 28×28 JPEG here, 3 alternating runs of 30,000)."""
    fd = os.open(rel, os.O_RDONLY, dir_fd=rootfd)
    try:
        data = os.read(fd, _READ)
    finally:
        os.close(fd)
    return data if len(data) < _READ else _read_file(base + rel)


def _transform_fast(data: bytes, opts: PackOptions) -> bytes | None:
    """A JPEG → .jpg without Pillow's Python layers: libjpeg decodes straight into a Pillow image of the wanted
    mode, crop/resize as :func:`_transform`, then Pillow's encoder driven directly. The same bytes as
    :func:`_transform` (a test checks); None: anything else, which :func:`_transform` handles.

    Per 28×28 grey JPEG to RGB q95 (CPU, one run, loaded VM): 63-68 µs against 77-90 µs for simplejpeg's
    decode into numpy plus the same encoder, and ~110 µs for the Image.open/Image.save path.
    """
    if opts.encoding != ".jpg" or data[:3] != _JPEG:
        return None
    if not opts.center_crop and not opts.resize:  # pixels as decoded: no Image object needed
        return _img.transcode_jpeg(data, {-1: None, 0: "L"}.get(opts.color, "RGB"), opts.quality)
    if opts.color == -1:
        info = _img.jpeg_info(data)
        if info is None or info[2] not in (1, 3):
            return None
        mode = "L" if info[2] == 1 else "RGB"
    else:
        mode = "RGB" if opts.color == 1 else "L"
    img = _img.decode_jpeg_image(data, mode)
    if img is None:
        return None
    return _img.encode_jpeg(_geometry(img, opts), opts.quality)


def _encode_chunk(args: tuple[str, list[LstItem], PackOptions]) -> tuple[bytes, list[tuple[int, int]], list[str]]:
    """One blob of framed records for the chunk, (index, offset in blob) per record, skip reasons.

    One tight loop for both modes: files opened relative to the root's descriptor (no path walk from /),
    single-label records framed inline (the rest through encode_record). Pass-through is ~8 µs an image of
    Python, 70k Fashion-MNIST files in ~1 s of CPU, most of it open/read/close.
    """
    root, items, opts = args
    payload_of = _pass_through if opts.pass_through else _reencode
    parts: list[bytes] = []
    where: list[tuple[int, int]] = []
    skipped: list[str] = []
    pos = 0
    head_pack, ir_pack, magic, pads = _HEAD.pack, _IR.pack, _MAGIC, _PAD
    base = os.path.join(root, "")  # read_lst keeps every path relative and inside root: plain concatenation
    rootfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for it in items:
            try:
                data = payload_of(_read_rel(rootfd, it.path, base), opts, base + it.path)
            except OSError as err:
                skipped.append(f"{base + it.path}: {err.strerror or err}")
                continue
            except DataError as err:
                skipped.append(str(err))
                continue
            labels = it.labels
            if len(labels) == 1 or not opts.pack_label:
                head = ir_pack(0, labels[0], it.index, 0)
                n = len(data) + 24
                # The header is 24 bytes (4-aligned), so an aligned magic word lies wholly in header or
                # payload: when neither holds it, the record is one part (encode_record handles the rest).
                if magic not in data and magic not in head and n <= MAX_LENGTH:
                    where.append((it.index, pos))
                    pad = (-n) & 3
                    parts += (head_pack(MAGIC, n), head, data, pads[pad])
                    pos += n + 8 + pad
                    continue
            rec = encode_record(pack(_header(it, opts), data))
            where.append((it.index, pos))
            parts.append(rec)
            pos += len(rec)
    finally:
        os.close(rootfd)
    return b"".join(parts), where, skipped


def _pass_through(data: bytes, opts: PackOptions, name: str) -> bytes:
    if data[:3] != _JPEG and data[:8] != _PNG and not _looks_like_image(data):
        raise DataError("not an image", path=name)
    return data


def _reencode(data: bytes, opts: PackOptions, name: str) -> bytes:
    fast = _transform_fast(data, opts)
    return fast if fast is not None else _transform(data, opts, name)


def pack_list(
    lst: str | Path,
    root: str | Path,
    opts: PackOptions,
    *,
    num_thread: int = 1,
    progress: Callable[[int], None] | None = None,
    items: list[LstItem] | None = None,
) -> PackResult:
    """Pack one ``.lst`` into ``<stem>.rec``/``<stem>.idx``; all or nothing (temp files renamed at the end).
    ``items``: the list already parsed (``read_lst(lst, root=root)``)."""
    opts.validate()
    lst = Path(lst)
    if items is None:
        items = read_lst(lst, root=root)
    res = PackResult(lst, lst.with_suffix(".rec"), lst.with_suffix(".idx"))
    chunks = [(str(root), items[i : i + _CHUNK], opts) for i in range(0, len(items), _CHUNK)]
    with RecordWriter(res.rec, res.idx) as writer:
        for (blob, where, skipped), chunk in zip(_map(chunks, _workers(opts, num_thread)), chunks, strict=True):
            writer.write_block(blob, where)
            res.written += len(where)
            res.skipped.extend(("", reason) for reason in skipped)
            if progress:
                progress(len(chunk[1]))
    return res


def _workers(opts: PackOptions, num_thread: int) -> int:
    # Pass-through is Python-bound (open, read, frame: ~8 µs an image) and a pool's round trip costs more
    # than it saves, so it stays in-process. Re-encoding gets --num-thread worker processes (capped at the
    # cores): ~40 % of its per-image time is Python, which threads would serialise on the GIL.
    if opts.pass_through:
        return 1
    return max(1, min(num_thread, os.cpu_count() or 1))


def _map(chunks: list[Any], workers: int) -> Iterator[tuple[bytes, list[tuple[int, int]], list[str]]]:
    """Chunks encoded by ``workers`` forked processes (``tailor.data.forked``), yielded in list order (as
    im2rec's reorder buffer does). Each chunk comes back as one bytes blob, so a result is a copy of ~300 KB,
    not 256 objects; the workers inherit the chunks, so a task is one number (pickling 70k list items to send
    and unpickling them cost ~0.35 s of CPU).

    Measured against a thread pool (70k re-encodes, 2 cores under load ~6, 4 alternating pairs): processes
    3.7 / 4.4 / 4.5 / 8.6 s wall, threads 5.0 / 5.8 / 7.5 / 10.1 s, processes faster in every pair, for about
    the same total CPU; they also keep their share of the cores when other jobs compete, as im2rec's do.
    """
    return fork_map(lambda i: _encode_chunk(chunks[i]), len(chunks), workers)


def pack_prefix(
    prefix: str | Path,
    root: str | Path,
    opts: PackOptions,
    *,
    num_thread: int = 1,
    progress: Callable[[int], None] | None = None,
    on_list: Callable[[Path, int], None] | None = None,
) -> list[PackResult]:
    """im2rec without ``--list``: pack every list matching PREFIX. No list found → :class:`DataError`."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("image root is not a directory", path=root)
    lists = find_lists(prefix)
    if not lists:
        raise DataError(f"no .lst file with prefix {prefix}: create one with `tailor data im2rec --list`")
    # Each list is parsed once (70k lines: ~0.3 s), for the class names and for packing. Names come from all of
    # the prefix's lists together: a small validation list may lack a class.
    parsed = [(lst, read_lst(lst, root=root)) for lst in lists]
    names = class_names_from_items(item for _, items in parsed for item in items)
    results = []
    for lst, items in parsed:
        if on_list:
            on_list(lst, len(items))
        res = pack_list(lst, root, opts, num_thread=num_thread, progress=progress, items=items)
        if names:
            res.classes = write_class_map(res.rec, names)
        results.append(res)
    return results
