"""Resumable checkpoints: ``<dir>/<name>.safetensors`` (model + optimizer tensors) + ``<name>.json`` (the rest).

Names: ``last`` (every epoch, for resume), ``best`` (best validation accuracy), ``epoch-<NNNN>`` (every
``checkpoint_frequency`` epochs).

No pickle: tensors go to safetensors, everything else (epoch, elapsed seconds, best accuracy, the resolved
hyperparameters, scalar optimizer state) to JSON. A restarted job loads the newest checkpoint whose
hyperparameters match and continues from the next epoch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


@dataclass
class Checkpoint:
    epoch: int  # number of completed epochs
    elapsed: float  # training seconds spent so far (drives the time-budget schedule)
    best_accuracy: float | None
    hyperparameters: dict[str, str]
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, pstate in state["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor) and value.ndim > 0:
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value.item() if isinstance(value, torch.Tensor) else value
    return tensors, {"scalars": scalars, "param_groups": state["param_groups"]}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        # Adam keeps `step` as a 0-d float tensor; others are plain numbers.
        state.setdefault(int(pid), {})[key] = torch.tensor(float(value)) if key == "step" else value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(directory: Path, ckpt: Checkpoint, *, name: str | None = None) -> Path:
    """Write atomically (tmp + rename) so a kill mid-write never leaves a half checkpoint as the newest."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = name or f"epoch-{ckpt.epoch:04d}"
    opt_tensors, opt_meta = _flatten_optimizer(ckpt.optimizer_state)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in ckpt.model_state.items()} | opt_tensors
    meta = {
        "epoch": ckpt.epoch,
        "elapsed": ckpt.elapsed,
        "best_accuracy": ckpt.best_accuracy,
        "hyperparameters": ckpt.hyperparameters,
        "optimizer": opt_meta,
    }
    weights, info = directory / f"{stem}.safetensors", directory / f"{stem}.json"
    save_file(tensors, str(weights) + ".tmp")
    os.replace(str(weights) + ".tmp", weights)
    info.with_suffix(".json.tmp").write_text(json.dumps(meta, indent=1))
    os.replace(info.with_suffix(".json.tmp"), info)  # the .json appears last: it marks the pair complete
    return info


def load_checkpoint(info: Path) -> Checkpoint:
    meta = json.loads(info.read_text())
    tensors = load_file(str(info.with_suffix(".safetensors")))
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    opt_tensors = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    return Checkpoint(
        epoch=meta["epoch"],
        elapsed=meta["elapsed"],
        best_accuracy=meta["best_accuracy"],
        hyperparameters=meta["hyperparameters"],
        model_state=model_state,
        optimizer_state=_unflatten_optimizer(opt_tensors, meta["optimizer"]),
    )


def latest_checkpoint(directory: Path, hyperparameters: dict[str, str]) -> Checkpoint | None:
    """The checkpoint with the most completed epochs written with the same hyperparameters, or None."""
    if not directory.is_dir():
        return None
    newest: tuple[int, Path] | None = None
    for info in directory.glob("*.json"):
        meta = json.loads(info.read_text())
        if meta.get("hyperparameters") != hyperparameters or not info.with_suffix(".safetensors").exists():
            continue
        if newest is None or meta["epoch"] > newest[0]:
            newest = (meta["epoch"], info)
    return load_checkpoint(newest[1]) if newest else None
