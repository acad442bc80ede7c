"""Augmented manifests (SageMaker's JSON Lines channels): one object a line naming an image and its label.

``source-ref`` (or the first of ``AttributeNames``) is a path, a ``file://`` URI or an ``s3://`` URI; the label
attribute is a class id or a multi-hot list, and ``<label>-metadata.class-name`` names the class. Whatever the
bytes, a bad line raises ``DataError`` naming the file and line (non-UTF-8 text, JSON nested too deep or with a
number too long to read, NaN/Infinity labels, empty or NUL-holding references).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tailor.errors import DataError, ValidationError


@dataclass
class Manifests:
    refs: list[str]
    labels: np.ndarray  # float32 (N,) class ids or (N, L) multi-hot
    class_names: list[str] | None
    sources: list[Path]


def read_manifests(channel_dir: Path, files: list[Path], attrs: Sequence[str] | None) -> Manifests:
    """Every line of the channel's augmented manifests: image references (resolved against the channel dir),
    labels, class names when the metadata names each class, and the files whose stat keys the cache."""
    manifests = [p for p in files if p.suffix in (".manifest", ".jsonl", ".json")]
    if not manifests:
        raise DataError("no augmented manifest (.manifest / .jsonl) in the channel", path=channel_dir)
    refs: list[str] = []
    labels: list[Any] = []
    names: dict[int, str] = {}
    sources: list[Path] = list(manifests)
    for man in manifests:
        try:
            text = man.read_bytes().decode()
        except UnicodeDecodeError as err:
            raise DataError(f"manifest is not UTF-8 text (byte {err.start})", path=man) from None
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            obj = _json_line(line, man, n)
            if not isinstance(obj, dict):
                raise DataError("each line must be a JSON object", path=man, where=f"line {n}")
            ref_key, label_key = _manifest_keys(obj, attrs, man, n)
            ref = obj[ref_key]
            if not isinstance(ref, str) or not ref or "\0" in ref:
                raise DataError(f"{ref_key} must be a non-empty path or s3:// URI", path=man, where=f"line {n}")
            label = _manifest_label(obj[label_key], man, n)
            meta = obj.get(f"{label_key}-metadata")
            if isinstance(meta, dict) and isinstance(label, float) and isinstance(meta.get("class-name"), str):
                names[int(label)] = meta["class-name"]
            resolved = _resolve_ref(ref, channel_dir)
            refs.append(resolved)
            labels.append(label)
            if not resolved.startswith("s3://"):
                sources.append(Path(resolved))
    widths = {1 if isinstance(lab, float) else len(lab) for lab in labels}
    if len(widths) != 1:
        raise DataError("manifest mixes class-id and multi-hot labels of different lengths", path=manifests[0])
    arr = np.asarray(labels, dtype=np.float32)
    class_names = [names[i] for i in range(len(names))] if names and sorted(names) == list(range(len(names))) else None
    return Manifests(refs, arr, class_names, sources)


def _manifest_keys(obj: dict[str, Any], attrs: Sequence[str] | None, man: Path, n: int) -> tuple[str, str]:
    if attrs:
        if len(attrs) < 2:
            raise ValidationError("AttributeNames needs the source-ref attribute and a label attribute")
        ref_key, label_key = attrs[0], attrs[1]
    else:
        ref_key = "source-ref"
        others = [k for k in obj if k != ref_key and not k.endswith("-metadata")]
        if not others:
            raise DataError("no label attribute beside source-ref", path=man, where=f"line {n}")
        label_key = others[0]
    for k in (ref_key, label_key):
        if k not in obj:
            raise DataError(f"attribute {k!r} missing", path=man, where=f"line {n}")
    return ref_key, label_key


def _json_line(line: str, man: Path, n: int) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"not JSON ({err.msg})", path=man, where=f"line {n}") from None
    except ValueError:  # an integer of more than 4300 digits (Python's int-from-string limit)
        raise DataError("not JSON (a number too long to read)", path=man, where=f"line {n}") from None
    except RecursionError:  # '[' x 100000 exhausts the decoder's stack
        raise DataError("not JSON (nested too deeply)", path=man, where=f"line {n}") from None


def _number(v: Any) -> float | None:
    """A JSON number as a finite float; None for anything else (bool, NaN, Infinity, 1e999, 10**400)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def _manifest_label(value: Any, man: Path, n: int) -> float | list[float]:
    if isinstance(value, str):
        value = _json_line(value, man, n)
    if isinstance(value, list):
        labels = [_number(v) for v in value]
        if not labels or None in labels:
            raise DataError("multi-hot label must be a non-empty list of finite numbers", path=man, where=f"line {n}")
        return labels  # type: ignore[return-value]
    label = _number(value)
    if label is None:
        raise DataError(f"label {value!r:.80} is not a class id or a multi-hot list", path=man, where=f"line {n}")
    return label


def _resolve_ref(ref: str, channel_dir: Path) -> str:
    if ref.startswith("s3://"):
        return ref
    if ref.startswith("file://"):
        return ref[len("file://") :]
    p = Path(ref)
    return str(p if p.is_absolute() else channel_dir / p)
