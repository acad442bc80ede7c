"""Training input: a channel (``.rec`` / images + ``.lst`` / augmented manifest) → decoded uint8 (N, C, H, W).

Training never decodes an image in its hot loop: the first load decodes every image once, in one thread (or,
for a large .rec, one process) per core (simplejpeg for JPEG, GIL released; Pillow for the rest), straight into
a memory-mapped ``images.npy`` (+ ``labels.npy``, ``meta.json``) under ``cache_dir``; the key is a hash of the
source files (path, size, mtime) and the options, so the second load of the same channel only maps the file
(milliseconds). Pixels follow SageMaker's image-classification rules: convert to ``channels``, optionally resize
the shorter side to ``resize``, then centre-crop to ``size`` (an image smaller than ``size`` is an error, never
silently padded).

A .rec of ``FORK_MIN_IMAGES`` (8,192) or more decodes in one forked process per core (each its own GIL) into
the shared mapping of images.npy; only chunk starts go out and header labels come back. Image files and S3
objects keep threads (boto3 clients are shared as they are).

Measured contract, forked decoding (``python -m bench data``, same files and comparison as below):
  one run at load average 4.1 before / 7.4 after:
  RGB  (MXNet-re-encoded .rec): 27,751 img/s vs 22,315 (1.2x); cached reload 2.0 ms
  grey (pass-through .rec):     36,147 img/s vs 31,957 (1.1x); cached reload 3.2 ms
  3 alternating runs at load average 15-17 (every figure ~10x below a quiet run's):
  RGB 3,663 vs 2,735 img/s (1.3x; runs 3.5-4.0k vs 2.5-3.4k); grey 4,573 vs 4,790 (1.0x; runs 4.1-6.1k vs 3.8-8.9k)
  Goal >= 1.0x ImageRecordIter on the same .rec: met in both runs (grey even within the loaded run's spread).
Earlier, threads only (load average ~5, so ±30 % run to run):
  RGB (MXNet-re-encoded .rec): 32.3k img/s vs 43.1k (0.7x; runs 26-32k vs 40-47k; other runs 1.3x, 1.0x)
  grey (pass-through .rec):    39.6k img/s vs 64.2k (0.6x; runs 37-40k vs 60-66k; other runs 0.7x, 0.5x)
  cached reload: 1.7-2 ms. Before (Pillow in 2 processes): 8.9k RGB / 13.9k grey img/s.
  Goal >= 20,000 img/s: met. Goal >= ImageRecordIter (C++, no GIL): not met for grey, about even for RGB.
  The figures above need the .rec fast loop (``_decode_rec_fast``). Re-measured when its dispatch was
  restored (60k grey 28x28 JPEGs in one .rec, two alternating rounds, load average ~8): fast loop 17.6k / 13.0k
  img/s vs the general path 11.0k / 9.4k, 1.4-1.6x.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tailor.data import images as _img
from tailor.data.classes import map_path, read_class_map
from tailor.data.forked import fork_map
from tailor.data.lst import LstItem, class_names_from_items, list_images, read_lst
from tailor.data.manifest import read_manifests
from tailor.data.recordio import IR_SIZE, RecordReader, unpack
from tailor.errors import DataError, TailorError, ValidationError

CACHE_VERSION = 1
RECORDIO_TYPES = {"application/x-recordio"}
IMAGE_TYPES = {"application/x-image", "image/jpeg", "image/png"}
MANIFEST_TYPES = {"application/jsonlines", "application/x-jsonlines", "application/json"}
_FLAG_LABEL = struct.Struct("<If")  # IRHeader's flag and label
# Decode threads: one per core (decoding releases the GIL); more only adds switching.
_WORKERS = max(1, min(8, os.cpu_count() or 2))
# From this many .rec images on, decoding runs in forked processes (one GIL each) instead of threads; below it
# the fork and pool start (~20-40 ms) cost more than the parallel Python saves.
FORK_MIN_IMAGES = 8192


@dataclass
class ImageSet:
    images: np.ndarray  # uint8 (N, C, H, W), possibly a read-only np.memmap
    labels: np.ndarray  # float32 (N,) class ids, or (N, L) multi-hot / multi-label
    class_names: list[str] | None

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass
class _Plan:
    """What to decode: ``entries`` are (rec file, offset) pairs or image references (path / URI)."""

    kind: str  # "rec" or "files"
    entries: list[Any]
    labels: np.ndarray | None  # known up front for files; read from record headers for .rec
    class_names: list[str] | None
    sources: list[Path] = field(default_factory=list)  # files whose stat keys the cache


def load_channel(
    channel_dir: Path,
    content_type: str | None = None,
    *,
    channels: int,
    size: tuple[int, int] | None,
    resize: int | None = None,
    lst_dir: Path | None = None,
    cache_dir: Path | None = None,
    progress: bool = False,
    attribute_names: Sequence[str] | None = None,
    storage: Any = None,
) -> ImageSet:
    """Decode a channel into an :class:`ImageSet` (cached under ``cache_dir`` when given).

    ``attribute_names`` (SageMaker's AttributeNames, e.g. ``["source-ref", "class"]``) picks the manifest's label
    attribute; ``storage`` (a :class:`tailor.storage.Storage`) resolves ``s3://`` source-refs.
    """
    channel_dir = Path(channel_dir)
    if channels not in (1, 3):
        raise ValidationError(f"channels must be 1 or 3, got {channels}")
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ValidationError(f"size must be (height, width) with positive values, got {size}")
    if not channel_dir.is_dir():
        raise DataError("channel directory not found", path=channel_dir)
    plan = _plan(channel_dir, content_type, lst_dir, attribute_names)
    opts = {"channels": channels, "size": list(size) if size else None, "resize": resize}
    if cache_dir is None:
        with tempfile.TemporaryDirectory(prefix="tailor-decode-") as tmp:
            out = _decode_into(Path(tmp) / "set", plan, opts, progress, storage)
            return ImageSet(np.array(out.images), np.array(out.labels), out.class_names)
    key = _cache_key(plan, opts)
    final = Path(cache_dir) / key
    if (final / "meta.json").is_file():
        return _open_cached(final)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cache_dir))
    try:
        _decode_into(work, plan, opts, progress, storage)
        try:
            os.replace(work, final)
        except OSError:
            if not (final / "meta.json").is_file():  # a concurrent loader won the rename: use its result
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _open_cached(final)


# ----------------------------------------------------------------------------------------------- planning
def _plan(channel_dir: Path, content_type: str | None, lst_dir: Path | None, attrs: Sequence[str] | None) -> _Plan:
    ct = (content_type or "").split(";")[0].strip().lower() or None
    if ct == "application/x-recordio-protobuf":
        raise ValidationError(
            "content type application/x-recordio-protobuf is not supported: use x-recordio or x-image"
        )
    files = sorted(p for p in channel_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    recs = [p for p in files if p.suffix == ".rec"]
    if ct is None:
        if recs:
            ct = "application/x-recordio"
        elif any(p.suffix in (".manifest", ".jsonl") for p in files):
            ct = "application/jsonlines"
        else:
            ct = "application/x-image"
    if ct in RECORDIO_TYPES:
        if not recs:
            raise DataError("content type application/x-recordio but no .rec file in the channel", path=channel_dir)
        return _plan_rec(recs)
    if ct in IMAGE_TYPES:
        return _plan_images(channel_dir, lst_dir)
    if ct in MANIFEST_TYPES:
        return _plan_manifest(channel_dir, files, attrs)
    raise ValidationError(
        f"unsupported content type {content_type!r}: use application/x-recordio, application/x-image "
        "or application/jsonlines (augmented manifest)"
    )


def _plan_rec(recs: list[Path]) -> _Plan:
    """Entries (record offsets) are filled by :func:`_expand` only on a cache miss: scanning 70k headers
    costs ~0.1 s, more than the whole cache hit. Class names come from the ``.classes.json`` beside the
    ``.rec`` files (all the same), else from a single ``.rec``'s ``.lst``."""
    maps = [map_path(rec) for rec in recs if map_path(rec).is_file()]
    found = [read_class_map(m) for m in maps]
    names = found[0] if found and len(found) == len(recs) and all(f == found[0] for f in found) else None
    if names:
        return _Plan("rec", [], None, names, [*recs, *maps])
    if len(recs) == 1:
        lst = recs[0].with_suffix(".lst")
        if lst.is_file():
            try:
                names = class_names_from_items(read_lst(lst))
            except DataError:
                names = None  # a stale or foreign .lst only costs the names, never the data
    return _Plan("rec", [], None, names, list(recs))


def _plan_images(channel_dir: Path, lst_dir: Path | None) -> _Plan:
    lsts = sorted((Path(lst_dir) if lst_dir else channel_dir).glob("*.lst"))
    if lsts:
        items: list[LstItem] = []
        for lst in lsts:
            items.extend(read_lst(lst, root=channel_dir))
        names = class_names_from_items(items)
    else:
        # No .lst: class folders, labelled in im2rec's order (sorted folder names).
        items, folders = list_images(channel_dir, recursive=True)
        names = folders if all(f != "." for f in folders) else None
        lsts = []
    if not items:
        raise DataError("image list is empty", path=lsts[0] if lsts else channel_dir)
    widths = {len(it.labels) for it in items}
    if len(widths) != 1:
        raise DataError(f"image list mixes {sorted(widths)} label columns", path=lsts[0] if lsts else channel_dir)
    labels = np.asarray([it.labels for it in items], dtype=np.float32)
    paths = [str(channel_dir / it.path) for it in items]
    return _Plan("files", paths, labels[:, 0] if labels.shape[1] == 1 else labels, names, [*lsts, *map(Path, paths)])


def _plan_manifest(channel_dir: Path, files: list[Path], attrs: Sequence[str] | None) -> _Plan:
    m = read_manifests(channel_dir, files, attrs)
    return _Plan("files", m.refs, m.labels, m.class_names, m.sources)


def _cache_key(plan: _Plan, opts: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, "kind": plan.kind, **opts}, sort_keys=True).encode())
    for src in plan.sources:
        try:
            st = os.stat(src)
        except OSError:
            raise DataError("image file not found", path=src) from None
        h.update(f"{os.path.abspath(src)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    if plan.kind == "files":
        h.update("\n".join(plan.entries).encode())
    return h.hexdigest()[:32]


def _open_cached(d: Path) -> ImageSet:
    meta = json.loads((d / "meta.json").read_text())
    return ImageSet(np.load(d / "images.npy", mmap_mode="r"), np.load(d / "labels.npy"), meta.get("class_names"))


# ----------------------------------------------------------------------------------------------- decoding
def _read_entry(
    kind: str, entry: Any, storage: Any, readers: dict[str, RecordReader]
) -> tuple[bytes | memoryview, Any, str]:
    """(encoded image, header label or None, name for messages); a .rec image is a view into the mapped file."""
    if kind == "rec":
        rec, off, start, end = entry
        r = readers[rec]
        record = r.view(start, end) if start >= 0 else r.read_at(off)
        header, payload = unpack(record, path=rec, where=f"byte {off}")
        return payload, header.label, f"{rec}, byte {off}"
    if entry.startswith("s3://"):
        if storage is None:
            raise DataError("s3:// source-ref needs storage: pass storage= to load_channel", path=entry)
        return storage.read_bytes(entry), None, entry
    try:
        with open(entry, "rb") as fh:
            return fh.read(), None, entry
    except OSError as err:
        raise DataError(f"cannot read image: {err.strerror}", path=entry) from None


def _prepare(data: bytes | memoryview, name: str, opts: dict[str, Any]) -> np.ndarray:
    """Encoded image → uint8 (C, H, W) per the options (possibly a view: copy before keeping it)."""
    if not opts["resize"]:
        arr = _img.jpeg_array(data, opts["channels"])  # simplejpeg: (H, W, C), GIL released while decoding
        if arr is not None:
            if opts["size"]:
                arr = _crop_array(arr, tuple(opts["size"]), name)
            return arr.transpose(2, 0, 1)
    data = bytes(data)  # Pillow's decoders want bytes, not a view of the mapped .rec
    if not opts["resize"]:
        arr = _img.decode_jpeg_array(data, opts["channels"])
        if arr is not None:
            if opts["size"]:
                arr = _crop_array(arr, tuple(opts["size"]), name)
            return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    img = _img.decode(data, opts["channels"], name=name)
    if opts["resize"]:
        img = _img.resize_shorter(img, int(opts["resize"]))
    if opts["size"]:
        img = _img.center_crop(img, tuple(opts["size"]), name=name)
    return _img.to_chw(img)


def _crop_array(arr: np.ndarray, size: tuple[int, int], name: str) -> np.ndarray:
    origin = _img.crop_origin(arr.shape[0], arr.shape[1], size, name)
    if origin is None:
        return arr
    top, left = origin
    return arr[top : top + size[0], left : left + size[1]]


def _decode_range(
    kind: str,
    entries: list[Any],
    start: int,
    out: np.ndarray,
    opts: dict[str, Any],
    storage: Any,
    readers: dict[str, RecordReader],
) -> tuple[int, list[Any]]:
    """Thread: decode ``entries`` straight into rows ``start…`` of the mapped images.npy; returns header labels."""
    if kind == "rec" and not opts["resize"] and _img.simplejpeg_or_none() is not None:
        return start, _decode_rec_fast(entries, start, out, opts, readers)
    shape = out.shape[1:]
    labels: list[Any] = []
    for i, entry in enumerate(entries):
        data, label, name = _read_entry(kind, entry, storage, readers)
        out[start + i] = _checked(_prepare(data, name, opts), shape, name)
        labels.append(label)
    return start, labels


def _checked(arr: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    if arr.shape != shape:
        raise DataError(
            f"image is {arr.shape[1]}x{arr.shape[2]} (HxW) but earlier images are {shape[1]}x{shape[2]}: "
            "set image_shape (size) or --resize so all images come out the same",
            path=name,
        )
    return arr


def _decode_rec_fast(
    entries: list[Any], start: int, out: np.ndarray, opts: dict[str, Any], readers: dict[str, RecordReader]
) -> list[Any]:
    """The common .rec case in a tight loop: single-label whole records whose JPEG has exactly the cache's
    size are decoded by simplejpeg into place (grey: the cache row itself, whose CHW = HW1 layout; colour: an
    HWC chunk buffer transposed into the rows once per chunk). Anything else takes :func:`_prepare`.

    Per image this is a struct unpack and one decode call: ~20 µs of Python per image less than the general
    path (70k RGB images: 19k -> 30k+ img/s on 2 threads, noisy 2-core VM).
    """
    n = len(entries)
    c, h, w = out.shape[1:]
    colorspace = "GRAY" if c == 1 else "RGB"
    want = (h, w, c)
    # Grey rows are written in place; colour goes through an (n, H, W, 3) buffer and one transpose.
    # np.asarray: a plain ndarray view, since indexing an np.memmap row costs ~1 µs of subclass bookkeeping.
    rows = np.asarray(out)
    dst = rows[start : start + n].reshape(n, h, w, 1) if c == 1 else np.empty((n, h, w, c), np.uint8)
    decode, unpack_head = _img.simplejpeg_or_none().decode_jpeg, _FLAG_LABEL.unpack_from
    labels: list[Any] = []
    last, mv = None, memoryview(b"")
    for i, (rec, off, s, e) in enumerate(entries):
        if s >= 0 and e - s > IR_SIZE:
            if rec is not last:
                last, mv = rec, readers[rec].view(0, None)
            flag, label = unpack_head(mv, s)
            if flag == 0 and mv[s + IR_SIZE : s + IR_SIZE + 3] == b"\xff\xd8\xff":
                try:
                    # Positional arguments (colorspace, fastdct, fastupsample, min h, min w, min factor,
                    # buffer): keyword parsing alone was ~1 µs of the ~12 µs an image costs.
                    if decode(mv[s + IR_SIZE : e], colorspace, False, False, 0, 0, 1, dst[i]).shape == want:
                        labels.append(label)
                        continue
                except Exception:  # corrupt, CMYK, bigger than the row: the general path decides
                    pass
        data, label, name = _read_entry("rec", (rec, off, s, e), None, readers)
        dst[i] = _checked(_prepare(data, name, opts), (c, h, w), name).transpose(1, 2, 0)
        labels.append(label)
    if c != 1:
        out[start : start + n] = dst.transpose(0, 3, 1, 2)
    return labels


def _expand(plan: _Plan) -> dict[str, RecordReader]:
    """Fill a .rec plan's entries with (file, offset, payload start, end); returns the open readers."""
    readers: dict[str, RecordReader] = {}
    if plan.kind == "rec" and not plan.entries:
        for rec in (src for src in plan.sources if src.suffix == ".rec"):  # not the class maps beside them
            r = readers[str(rec)] = RecordReader(rec, idx_path=os.devnull)
            offs, starts, ends = r.spans()
            name = str(rec)
            plan.entries.extend(zip([name] * len(offs), offs, starts, ends, strict=True))
    if not plan.entries:
        for r in readers.values():
            r.close()
        raise DataError("channel holds no images", path=plan.sources[0] if plan.sources else None)
    return readers


def _decode_into(d: Path, plan: _Plan, opts: dict[str, Any], progress: bool, storage: Any) -> ImageSet:
    readers = _expand(plan)
    try:
        return _decode_all(d, plan, opts, progress, storage, readers)
    finally:
        for r in readers.values():
            r.close()


def _decode_all(
    d: Path, plan: _Plan, opts: dict[str, Any], progress: bool, storage: Any, readers: dict[str, RecordReader]
) -> ImageSet:
    from numpy.lib.format import open_memmap

    d.mkdir(parents=True, exist_ok=True)
    n = len(plan.entries)
    first, _, name = _read_entry(plan.kind, plan.entries[0], storage, readers)
    c, h, w = _prepare(first, name, opts).shape
    del first
    out = open_memmap(str(d / "images.npy"), mode="w+", dtype=np.uint8, shape=(n, c, h, w))
    chunk = max(256, min(4096, n // (_WORKERS * 8) + 1))
    starts = list(range(0, n, chunk))
    header_labels: dict[int, list[Any]] = {}
    bar = _progress(n, progress, "decode")
    if _use_processes(plan, n, len(starts)):
        _decode_forked(plan.entries, out, opts, readers, starts, chunk, header_labels, bar)
    else:
        _decode_threaded(plan, out, opts, storage, readers, starts, chunk, header_labels, bar)
    bar(0, close=True)
    # No msync (out.flush()): other readers see the pages through the page cache at once, and forcing
    # 55-165 MB to disk here cost 0.1-1 s of wall time; meta.json, written last, marks the cache complete.
    del out
    labels = plan.labels if plan.labels is not None else _header_labels(plan, header_labels, starts)
    np.save(d / "labels.npy", np.ascontiguousarray(labels, dtype=np.float32))
    (d / "meta.json").write_text(
        json.dumps({"version": CACHE_VERSION, "count": n, "shape": [c, h, w], "class_names": plan.class_names, **opts})
    )
    return _open_cached(d)


def _decode_threaded(
    plan: _Plan,
    out: np.ndarray,
    opts: dict[str, Any],
    storage: Any,
    readers: dict[str, RecordReader],
    starts: list[int],
    chunk: int,
    header_labels: dict[int, list[Any]],
    bar: Callable[..., None],
) -> None:
    """Image files and S3 objects: threads (simplejpeg and Pillow release the GIL while decoding; boto3 clients
    are shared as they are), each writing its rows of the mapped cache in place."""
    with ThreadPoolExecutor(min(_WORKERS, len(starts))) as pool:
        futs = [
            pool.submit(_decode_range, plan.kind, plan.entries[s : s + chunk], s, out, opts, storage, readers)
            for s in starts
        ]
        try:
            for fut in as_completed(futs):
                s, labs = fut.result()
                header_labels[s] = labs
                bar(len(labs))
        finally:
            for fut in futs:
                fut.cancel()


def _use_processes(plan: _Plan, n: int, chunks: int) -> bool:
    """A .rec of at least ``FORK_MIN_IMAGES`` on 2+ cores decodes in forked processes (own GIL each)."""
    return (
        plan.kind == "rec"
        and n >= FORK_MIN_IMAGES
        and chunks > 1
        and _WORKERS > 1
        and "fork" in multiprocessing.get_all_start_methods()
    )


def _decode_forked(
    entries: list[Any],
    out: np.ndarray,
    opts: dict[str, Any],
    readers: dict[str, RecordReader],
    starts: list[int],
    chunk: int,
    header_labels: dict[int, list[Any]],
    bar: Callable[..., None],
) -> None:
    """A .rec: one forked process per core decodes chunks into the shared mapping of images.npy (MAP_SHARED,
    so the rows a child writes are the parent's) and sends back only the chunk's header labels. The workers
    inherit the entries, the mapped .rec files and the mapping at the fork: nothing but a chunk's number goes out.
    """

    def one(i: int) -> tuple[int, list[Any], str | None]:
        return _decode_forked_chunk(starts[i], entries[starts[i] : starts[i] + chunk], out, opts, readers)

    for s, labs, error in fork_map(one, len(starts), _WORKERS, ordered=False):
        if error is not None:
            raise DataError(error)
        header_labels[s] = labs
        bar(len(labs))


def _decode_forked_chunk(
    start: int, entries: list[Any], out: np.ndarray, opts: dict[str, Any], readers: dict[str, RecordReader]
) -> tuple[int, list[Any], str | None]:
    """In a forked decoder: one chunk into the shared rows; a failure comes back as its one-line message."""
    try:
        _, labels = _decode_range("rec", entries, start, out, opts, None, readers)
    except Exception as err:  # noqa: BLE001 - the parent raises it; a traceback object cannot cross the pipe
        return start, [], str(err) if isinstance(err, TailorError) else f"decoding failed: {type(err).__name__}: {err}"
    return start, labels, None


def _header_labels(plan: _Plan, by_start: dict[int, list[Any]], starts: list[int]) -> np.ndarray:
    flat = [lab for s in starts for lab in by_start[s]]
    if all(type(lab) is float for lab in flat):  # the usual single-label .rec: skip the per-label np.ndim
        return np.asarray(flat, dtype=np.float32)
    widths = {1 if np.ndim(lab) == 0 else int(np.size(lab)) for lab in flat}
    if len(widths) != 1:
        raise DataError(f"records mix label widths {sorted(widths)}", path=plan.sources[0])
    if np.ndim(flat[0]) == 0:
        return np.asarray(flat, dtype=np.float32)
    return np.stack([np.asarray(lab, dtype=np.float32) for lab in flat])


def _progress(total: int, enabled: bool, desc: str) -> Callable[..., None]:
    if not enabled:
        return lambda k, close=False: None
    from tailor.progress import progress_bar

    bar = progress_bar(total, desc, unit="img")

    def step(k: int, close: bool = False) -> None:
        bar.update(k)
        if close:
            bar.close()

    return step
