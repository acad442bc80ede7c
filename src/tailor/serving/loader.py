"""The one ``load_model``: a model directory or ``model.tar.gz`` -> something that predicts probabilities.

Reads weights from ``weights.safetensors`` or ``model.onnx`` only (never pickle) and rebuilds the network from
``model.json`` through the network registry, without importing the trainer. ``runtime="auto"`` picks ONNX
Runtime on CPU (2-4.5x faster than eager PyTorch at batch 1-64 on this CPU, docs/MEASURED.md) and PyTorch on CUDA.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tailor.artifact import CALIBRATION, MODEL_JSON, ONNX, WEIGHTS, read_model_json, safe_extract
from tailor.errors import ValidationError

Runtime = Literal["auto", "onnx", "torch"]


@dataclass(frozen=True)
class ModelMeta:
    image_shape: tuple[int, int, int]
    num_classes: int
    class_names: list[str] | None
    multi_label: bool
    model_name: str
    tta: bool
    raw: dict[str, Any]
    quantize: str = "fp32"


class LoadedModel:
    """``predict(uint8 NCHW) -> float32 probabilities (N, num_classes)``; softmax, or sigmoid if multi_label."""

    def __init__(self, meta: ModelMeta, runtime: str, run: Any, workdir: Path | None) -> None:
        self.meta = meta
        self.runtime = runtime
        self._run = run
        self._workdir = workdir

    def predict(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        c, h, w = self.meta.image_shape
        if images.dtype != np.uint8:
            raise ValidationError(f"predict expects uint8 images, got {images.dtype}")
        if images.ndim != 4 or images.shape[1:] != (c, h, w):
            raise ValidationError(f"predict expects images of shape (N, {c}, {h}, {w}), got {tuple(images.shape)}")
        logits = np.asarray(self._run(images.astype(np.float32)), dtype=np.float32)
        if self.meta.multi_label:
            return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def close(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __del__(self) -> None:
        self.close()


def load_model(
    path: str | Path,
    *,
    runtime: Runtime = "auto",
    device: str | None = None,
    threads: int | None = None,
    quantize: str = "fp32",
) -> LoadedModel:
    """``threads``: ONNX Runtime intra-op threads (default: every core this process may use, at most 8).
    ``quantize="int8"``: ONNX Runtime on an INT8 graph calibrated on the artifact's ``calibration.npy``
    (``tailor.serving.ort.quantized_graph``); needs ``model.onnx`` and the sample."""
    path = Path(path)
    workdir: Path | None = None
    if path.is_file():
        workdir = Path(tempfile.mkdtemp(prefix="tailor-model-"))
        safe_extract(path, workdir)
        model_dir = workdir
    elif path.is_dir():
        model_dir = path
    else:
        raise ValidationError(f"{path}: no such model directory or model.tar.gz")
    raw = read_model_json(model_dir)
    meta = ModelMeta(
        image_shape=tuple(raw["image_shape"]),  # type: ignore[arg-type]
        num_classes=int(raw["num_classes"]),
        class_names=raw.get("class_names"),
        multi_label=bool(raw.get("multi_label")),
        model_name=raw["model"]["name"],
        tta=raw.get("tta") == "flip",
        raw=raw,
        quantize=quantize,
    )
    want_cuda = device is not None and device.startswith("cuda")
    if runtime == "auto":
        runtime = "torch" if want_cuda or (device is None and _cuda_available()) else "onnx"
        if runtime == "onnx" and not (model_dir / ONNX).is_file():
            runtime = "torch"
    if quantize not in ("fp32", "int8"):
        raise ValidationError(f"quantize must be fp32 or int8, not {quantize!r}")
    calibration = None
    if quantize == "int8":
        if runtime == "torch" or not (model_dir / ONNX).is_file():
            raise ValidationError(f"{path}: INT8 serving runs the ONNX graph; the artifact has no {ONNX}")
        if not (model_dir / CALIBRATION).is_file():
            raise ValidationError(
                f"{path}: INT8 serving needs the artifact's {CALIBRATION} (training images for calibration), "
                "which models trained by older Tailor versions lack: retrain, or serve it in fp32"
            )
        calibration = np.load(model_dir / CALIBRATION, allow_pickle=False)
        runtime = "onnx"
    if runtime == "onnx":
        if not (model_dir / ONNX).is_file():
            raise ValidationError(f"{path}: the artifact has no {ONNX}; use runtime='torch'")
        run = _onnx_runner(model_dir / ONNX, threads, calibration)
    elif runtime == "torch":
        run = _torch_runner(model_dir, meta, device)
    else:
        raise ValidationError(f"runtime must be auto, onnx or torch, not {runtime!r}")
    return LoadedModel(meta, runtime, run, workdir)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_threads() -> int:
    """ONNX Runtime intra-op threads when none are asked for: every core this process may use, at most 8
    (``tailor.serving.server`` has the measurements behind every core rather than one fewer)."""
    return max(1, min(usable_cores(), 8))


def _onnx_runner(onnx_path: Path, threads: int | None = None, calibration: np.ndarray | None = None) -> Any:
    from tailor.serving.ort import session as ort_session

    n = threads if threads is not None else default_threads()
    session = ort_session(onnx_path, n, calibration=calibration)

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(["logits"], {"input": x})[0]

    return run


def _torch_runner(model_dir: Path, meta: ModelMeta, device: str | None) -> Any:
    import torch
    from safetensors.torch import load_file

    from tailor.algorithms.image_classification.networks import create_model, inference_model

    if not (model_dir / WEIGHTS).is_file():
        raise ValidationError(f"{model_dir}: the artifact has no {WEIGHTS}")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = create_model(meta.model_name, **meta.raw["model"]["kwargs"])
    model.load_state_dict(load_file(str(model_dir / WEIGHTS)))
    net = inference_model(model, meta.tta).eval().to(dev).to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def run(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(x).to(dev).contiguous(memory_format=torch.channels_last)
        return net(t).float().cpu().numpy()

    return run


__all__ = ["LoadedModel", "ModelMeta", "load_model", "MODEL_JSON"]
