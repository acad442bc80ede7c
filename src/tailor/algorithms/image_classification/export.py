"""Write a trained network as Tailor's model artifact (model.json + weights.safetensors + model.onnx)."""

from __future__ import annotations

import platform
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from tailor._version import __version__
from tailor.algorithms.image_classification.hyperparameters import Hyperparameters
from tailor.algorithms.image_classification.networks import inference_model
from tailor.artifact import write_artifact

ALGORITHM = "tailor/image-classification"


def export_onnx(model: nn.Module, image_shape: tuple[int, int, int], path: Path, *, tta: bool) -> None:
    """TorchScript-based export (dynamo=False: 0.5 s, matches eager within 5e-8 per docs/MEASURED.md)."""
    net = inference_model(model, tta).eval().float().cpu()
    example = torch.zeros(1, *image_shape)
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notices are not the user's concern
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net,
            (example,),
            str(path),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def model_json(
    *,
    hp: Hyperparameters,
    model_name: str,
    model_kwargs: dict[str, Any],
    class_names: list[str] | None,
    metrics: dict[str, float],
) -> dict[str, Any]:
    return {
        "algorithm": ALGORITHM,
        "model": {"name": model_name, "kwargs": model_kwargs},
        "architecture": hp.architecture,
        "num_layers": hp.num_layers if hp.architecture == "resnet" else None,
        "image_shape": list(hp.shape),
        "input": {"name": "input", "dtype": "uint8 cast to float32, 0..255", "layout": "NCHW"},
        "output": {"name": "logits", "activation": "sigmoid" if hp.multi_label else "softmax"},
        "num_classes": hp.num_classes,
        "class_names": class_names,
        "normalisation": {"mean": model_kwargs.get("mean"), "std": model_kwargs.get("std"), "inside_model": True},
        "multi_label": bool(hp.multi_label),
        "tta": "flip" if hp.tta else None,
        "hyperparameters": hp.resolved(),
        "metrics": metrics,
        "versions": {
            "tailor": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }


def write_model(
    tar_path: Path,
    model: nn.Module,
    *,
    hp: Hyperparameters,
    model_name: str,
    model_kwargs: dict[str, Any],
    class_names: list[str] | None,
    metrics: dict[str, float],
    onnx: bool = True,
    calibration: np.ndarray | None = None,
) -> Path:
    """``calibration``: uint8 (N, C, H, W) training images kept in the artifact for INT8 serving."""
    model = model.eval().float().cpu().to(memory_format=torch.contiguous_format)
    with tempfile.TemporaryDirectory(prefix="tailor-export-") as tmp:
        weights = Path(tmp) / "weights.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
        onnx_path = Path(tmp) / "model.onnx" if onnx else None
        if onnx_path is not None:
            export_onnx(model, hp.shape, onnx_path, tta=bool(hp.tta))
        meta = model_json(
            hp=hp, model_name=model_name, model_kwargs=model_kwargs, class_names=class_names, metrics=metrics
        )
        calib = None
        if calibration is not None and onnx_path is not None:
            calib = Path(tmp) / "calibration.npy"
            np.save(calib, np.ascontiguousarray(calibration, dtype=np.uint8))
        return write_artifact(
            tar_path, model_json=meta, weights_path=weights, onnx_path=onnx_path, calibration_path=calib
        )
