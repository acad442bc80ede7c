"""The model artifact: ``model.tar.gz`` = ``model.json`` + ``weights.safetensors`` (+ ``model.onnx``).

``model.json`` describes the model fully (registry name and kwargs, image shape, classes, normalisation,
resolved hyperparameters, final metrics, versions), so serving rebuilds it without the trainer. No pickle.
``safe_extract`` is the only way Tailor unpacks a tarball: absolute paths, ``..``, links, devices and
oversize members are rejected before anything is written.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

from tailor.errors import ValidationError

FORMAT_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS = "weights.safetensors"
ONNX = "model.onnx"
MAX_MEMBER_BYTES = 2 * 1024**3  # 2 GiB: ResNet-200 is ~260 MB in float32; anything far larger is suspect


def write_artifact(
    tar_path: Path, *, model_json: dict[str, Any], weights_path: Path, onnx_path: Path | None = None
) -> Path:
    """Pack model.json + weights (+ ONNX) into ``tar_path`` (gzip), written to a temp name then renamed."""
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
    tmp.replace(tar_path)
    return tar_path


def read_model_json(path: Path) -> dict[str, Any]:
    """model.json from a model directory or a model.tar.gz, checked for a supported format version."""
    path = Path(path)
    if path.is_dir():
        source = path / MODEL_JSON
        if not source.is_file():
            raise ValidationError(f"{path}: no {MODEL_JSON} in the model directory")
        meta = json.loads(source.read_text())
    else:
        try:
            with tarfile.open(path, "r:*") as tar:
                member = tar.getmember(MODEL_JSON)
                fh = tar.extractfile(member) if member.isfile() else None
                if fh is None:
                    raise ValidationError(f"{path}: {MODEL_JSON} is not a regular file")
                meta = json.loads(fh.read())
        except KeyError:
            raise ValidationError(f"{path}: no {MODEL_JSON} in the model archive") from None
        except (tarfile.TarError, OSError) as err:
            raise ValidationError(f"{path}: not a readable model.tar.gz ({err})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValidationError(
            f"{path}: model.json format_version {meta.get('format_version')!r} is not {FORMAT_VERSION}"
        )
    return meta


def safe_extract(tar_path: Path, dest: Path, *, max_member_bytes: int = MAX_MEMBER_BYTES) -> list[Path]:
    """Extract regular files and directories only; every member is checked before any is written."""
    dest = Path(dest).resolve()
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            members = tar.getmembers()
            for m in members:
                _check_member(m, dest, max_member_bytes)
            dest.mkdir(parents=True, exist_ok=True)
            written: list[Path] = []
            for m in members:
                target = dest / m.name
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                assert src is not None  # regular file, checked above
                with src, target.open("wb") as out:
                    remaining = m.size
                    while chunk := src.read(min(1 << 20, remaining) if remaining else 0):
                        out.write(chunk)
                        remaining -= len(chunk)
                written.append(target)
            return written
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ValidationError(f"{tar_path}: not a readable tar archive ({err})") from None


def _check_member(m: tarfile.TarInfo, dest: Path, max_bytes: int) -> None:
    name = m.name
    pure = PurePosixPath(name)
    if pure.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ValidationError(f"unsafe archive member {name!r}: absolute path")
    if ".." in pure.parts or "\\" in name:
        raise ValidationError(f"unsafe archive member {name!r}: path escapes the destination")
    if m.issym() or m.islnk():
        raise ValidationError(f"unsafe archive member {name!r}: links are not allowed")
    if not (m.isfile() or m.isdir()):
        raise ValidationError(f"unsafe archive member {name!r}: only regular files and directories are allowed")
    if m.size > max_bytes:
        raise ValidationError(f"archive member {name!r} is {m.size} bytes, over the {max_bytes}-byte limit")
    if not (dest / name).resolve().is_relative_to(dest):
        raise ValidationError(f"unsafe archive member {name!r}: path escapes the destination")
