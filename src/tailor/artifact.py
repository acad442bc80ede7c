"""The model artifact: ``model.tar.gz`` = ``model.json`` + ``weights.safetensors`` (+ ``model.onnx``, +
``calibration.npy``: 256 training images, uint8 NCHW, from which serving calibrates an INT8 graph on request).

``model.json`` describes the model fully (registry name and kwargs, image shape, classes, normalisation,
resolved hyperparameters, final metrics, versions), so serving rebuilds it without the trainer. No pickle.
``safe_extract`` is the only way Tailor unpacks a tarball. It reads the archive as one stream (a tar header
declaring 2 GiB costs nothing to read, its contents do): every member header is checked before that member is
written (absolute paths, ``..``, links, devices, members over ``max_member_bytes``, a running total over
``max_total_bytes`` (setting ``max_artifact_bytes``), more than ``MAX_MEMBERS`` entries), model.json is parsed
and checked as soon as it is met (``write_artifact`` puts it first), and the decompressed stream itself is
counted, so even tar's own metadata cannot expand past the limit. Members land in a staging directory beside
``dest`` that becomes ``dest`` only when the whole archive passed; a refusal leaves nothing behind.
Error messages name ``source`` (the user's URI) when given, never the server's cache or model directories.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any

from tailor.errors import TailorError, ValidationError
from tailor.json_input import parse_json
from tailor.settings import DEFAULT_MAX_ARTIFACT_BYTES

FORMAT_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS = "weights.safetensors"
ONNX = "model.onnx"
# uint8 (N, C, H, W) training images (np.save format) for INT8 calibration; optional (older artifacts lack it)
CALIBRATION = "calibration.npy"
MAX_MEMBER_BYTES = 2 * 1024**3  # 2 GiB: ResNet-200 is ~260 MB in float32; anything far larger is suspect
MAX_TOTAL_BYTES = DEFAULT_MAX_ARTIFACT_BYTES  # the largest network's artifact x 2 (see tailor.settings)
MAX_MEMBERS = 10_000  # an artifact holds 2-3 files; a user's own model dir a few hundred at most
MAX_MODEL_JSON_BYTES = 16 * 1024 * 1024  # 100,000 class names of 30 characters make a ~3.4 MB model.json
_CHUNK = 1 << 20
_TAR_BLOCK = 512


def write_artifact(
    tar_path: Path,
    *,
    model_json: dict[str, Any],
    weights_path: Path,
    onnx_path: Path | None = None,
    calibration_path: Path | None = None,
) -> Path:
    """Pack model.json + weights (+ ONNX, + calibration sample) into ``tar_path`` (gzip), written to a temp name
    then renamed."""
    meta = {"format_version": FORMAT_VERSION, **model_json}
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tar_path.with_name(tar_path.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        data = json.dumps(meta, indent=1, sort_keys=True).encode()
        info = tarfile.TarInfo(MODEL_JSON)
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
        tar.add(weights_path, arcname=WEIGHTS)
        if onnx_path is not None:
            tar.add(onnx_path, arcname=ONNX)
        if calibration_path is not None:
            tar.add(calibration_path, arcname=CALIBRATION)
    tmp.replace(tar_path)
    return tar_path


def read_model_json(path: Path, *, source: str | None = None) -> dict[str, Any]:
    """model.json from a model directory or a model.tar.gz, checked for a supported format version.

    From a tarball only the members up to model.json are read (as one stream, nothing written)."""
    path = Path(path)
    label = source or str(path)
    if path.is_dir():
        file = path / MODEL_JSON
        if not file.is_file():
            raise ValidationError(f"{label}: no {MODEL_JSON} in the model directory")
        return check_model_json(file.read_bytes(), label)
    with _reading(path, label, MAX_TOTAL_BYTES) as tar:
        for member in tar:
            if member.name.removeprefix("./") == MODEL_JSON and member.isfile():
                return check_model_json(_read_member(tar, member, label), label)
    raise ValidationError(f"{label}: no {MODEL_JSON} in the model archive")


def check_model_json(raw: bytes, label: str) -> dict[str, Any]:
    """Parsed model.json, or a one-line ``ValidationError`` naming ``label``."""
    try:
        meta = parse_json(raw, MODEL_JSON)
    except ValidationError as err:
        raise ValidationError(f"{label}: {err.message}") from None
    if not isinstance(meta, dict):
        raise ValidationError(f"{label}: {MODEL_JSON} must be a JSON object")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValidationError(
            f"{label}: {MODEL_JSON} format_version {meta.get('format_version')!r} is not {FORMAT_VERSION}"
        )
    return meta


def safe_extract(
    tar_path: Path,
    dest: Path,
    *,
    max_member_bytes: int = MAX_MEMBER_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    source: str | None = None,
) -> list[Path]:
    """Extract regular files and directories only into ``dest`` (absent or an empty directory); each member is
    checked before it is written and nothing is left behind when the archive is refused."""
    label = source or str(tar_path)
    dest = Path(dest).resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        with _reading(Path(tar_path), label, max_total_bytes) as tar:
            names = _extract_members(tar, stage, label, max_member_bytes, max_total_bytes)
        os.replace(stage, dest)  # an empty directory is replaced atomically; anything else is an error
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return [dest / name for name in names]


def _extract_members(
    tar: tarfile.TarFile, stage: Path, label: str, max_member_bytes: int, max_total_bytes: int
) -> list[str]:
    written: list[str] = []
    total = 0
    for count, m in enumerate(tar, 1):
        if count > MAX_MEMBERS:
            raise ValidationError(f"{label}: more than {MAX_MEMBERS} archive members")
        _check_member(m, stage, max_member_bytes, label)
        total += m.size if m.isfile() else 0
        if total > max_total_bytes:
            raise ValidationError(
                f"{label}: archive member {m.name!r} takes the unpacked size past the {max_total_bytes}-byte limit "
                "(setting max_artifact_bytes)"
            )
        target = stage / m.name
        if m.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if m.name.removeprefix("./") == MODEL_JSON:
            raw = _read_member(tar, m, label)
            check_model_json(raw, label)  # a wrong or foreign archive stops here, before its bulk is read
            target.write_bytes(raw)
        else:
            _copy_member(tar, m, target, label)
        written.append(m.name)
    return written


def _read_member(tar: tarfile.TarFile, m: tarfile.TarInfo, label: str) -> bytes:
    if m.size > MAX_MODEL_JSON_BYTES:
        raise ValidationError(f"{label}: {MODEL_JSON} is {m.size} bytes, over the {MAX_MODEL_JSON_BYTES}-byte limit")
    src = tar.extractfile(m)
    assert src is not None  # a regular file
    return src.read()


def _copy_member(tar: tarfile.TarFile, m: tarfile.TarInfo, target: Path, label: str) -> None:
    src = tar.extractfile(m)
    assert src is not None  # regular file, checked above
    with src, target.open("wb") as out:
        remaining = m.size
        while remaining and (chunk := src.read(min(_CHUNK, remaining))):
            out.write(chunk)
            remaining -= len(chunk)
    if remaining:
        raise ValidationError(f"{label}: archive member {m.name!r} is truncated")


class _CappedStream(io.RawIOBase):
    """The decompressed archive, refused once it passes the limit plus tar's own framing (headers, padding,
    the end-of-archive blocks): bounds what even a pax header declaring gigabytes can make tarfile read."""

    def __init__(self, raw: IO[bytes], limit: int, label: str) -> None:
        self.raw, self.limit, self.label, self.count = raw, limit, label, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        data = self.raw.read(len(buf))
        self.count += len(data)
        if self.count > self.limit:
            raise ValidationError(f"{self.label}: the archive unpacks to more than {self.limit} bytes")
        buf[: len(data)] = data
        return len(data)


# Decompressors by magic bytes; each is closed by ``_reading``'s exit stack.
_OPENERS: dict[bytes, Callable[[IO[bytes]], IO[bytes]]] = {
    b"\x1f\x8b": lambda f: gzip.GzipFile(fileobj=f, mode="rb"),  # multi-member gzip streams too
    b"BZh": lambda f: bz2.BZ2File(f),
    b"\xfd7zXZ\x00": lambda f: lzma.LZMAFile(f),  # noqa: SIM115
}


@contextmanager
def _reading(tar_path: Path, label: str, max_total_bytes: int) -> Iterator[tarfile.TarFile]:
    """The archive as a stream of members (``tarfile`` mode ``r|``): gzip, bzip2, xz or plain tar."""
    try:
        with open(tar_path, "rb") as fh, ExitStack() as stack:
            magic = fh.read(6)
            fh.seek(0)
            opener = next((o for m, o in _OPENERS.items() if magic.startswith(m)), None)
            raw = stack.enter_context(opener(fh)) if opener is not None else fh
            # Framing: a 512-byte header (plus a pax or long-name header) per member, padding, end blocks.
            limit = max_total_bytes + (3 * MAX_MEMBERS + 20) * _TAR_BLOCK
            capped = io.BufferedReader(_CappedStream(raw, limit, label), _CHUNK)
            with tarfile.open(fileobj=capped, mode="r|") as tar:
                yield tar
    except TailorError:
        raise
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError, ValueError) as err:
        raise ValidationError(f"{label}: not a readable tar archive ({_why(err)})") from None


def _why(err: Exception) -> str:
    """The reason without a file name: OSError's str() names the path it failed on."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err)[:200] or type(err).__name__


def _check_member(m: tarfile.TarInfo, dest: Path, max_bytes: int, label: str = "") -> None:
    name = m.name
    pure = PurePosixPath(name)
    where = f"{label}: " if label else ""
    if pure.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ValidationError(f"{where}unsafe archive member {name!r}: absolute path")
    if ".." in pure.parts or "\\" in name:
        raise ValidationError(f"{where}unsafe archive member {name!r}: path escapes the destination")
    if m.issym() or m.islnk():
        raise ValidationError(f"{where}unsafe archive member {name!r}: links are not allowed")
    if not (m.isfile() or m.isdir()):
        raise ValidationError(f"{where}unsafe archive member {name!r}: only regular files and directories are allowed")
    if m.size > max_bytes:
        raise ValidationError(f"{where}archive member {name!r} is {m.size} bytes, over the {max_bytes}-byte limit")
    if not (dest / name).resolve().is_relative_to(dest):
        raise ValidationError(f"{where}unsafe archive member {name!r}: path escapes the destination")
