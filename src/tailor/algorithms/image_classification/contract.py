"""The SageMaker training contract around ``train.fit``.

Reads ``<job>/input/config/{hyperparameters,inputdataconfig,resourceconfig}.json`` and
``<job>/input/data/<channel>/`` (train, validation, train_lst, validation_lst, model), writes
``<job>/model/model.tar.gz``, ``<job>/checkpoints/``, ``<job>/output/resolved_hyperparameters.json`` and,
on failure, ``<job>/output/failure`` (first 1024 chars = FailureReason) with a non-zero exit status.
SIGTERM (StopTrainingJob) writes a checkpoint and exits with 143 within one training batch.
"""

from __future__ import annotations

import json
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

from tailor.algorithms.image_classification.hyperparameters import Hyperparameters, Profile, parse_hyperparameters
from tailor.errors import TailorError, ValidationError

EXIT_FAILED = 1
EXIT_STOPPED = 143  # 128 + SIGTERM, what a stopped container reports


def log(message: str) -> None:
    print(f"[{time.strftime('%m/%d/%Y %H:%M:%S')} INFO] {message}", flush=True)


def _read_json(path: Path, *, required: bool) -> dict[str, Any]:
    if not path.is_file():
        if required:
            raise ValidationError(f"{path}: missing (the training contract needs it)")
        return {}
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValidationError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(value, dict):
        raise ValidationError(f"{path}: expected a JSON object")
    return value


def write_failure(job_dir: Path, reason: str) -> None:
    out = job_dir / "output"
    out.mkdir(parents=True, exist_ok=True)
    (out / "failure").write_text(reason[:1024])


def run(job_dir: Path, *, profile: Profile = "tailor", cache_dir: Path | None = None) -> int:
    """Run one training job in ``job_dir``; returns the process exit status (0 success)."""
    job_dir = Path(job_dir)
    stop = threading.Event()
    previous = _install_sigterm(stop)
    try:
        _train(job_dir, profile, cache_dir, stop)
        return 0
    except _Stopped:
        return EXIT_STOPPED
    except TailorError as err:
        log(f"Training failed: {err}")
        write_failure(job_dir, f"{type(err).__name__}: {err}" if not isinstance(err, ValidationError) else str(err))
        return EXIT_FAILED
    except Exception as err:  # an algorithm bug: the job must still fail cleanly with a reason
        traceback.print_exc()
        write_failure(job_dir, f"AlgorithmError: {type(err).__name__}: {err}")
        return EXIT_FAILED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _Stopped(Exception):
    pass


def _install_sigterm(stop: threading.Event) -> Any:
    def handler(signum: int, frame: FrameType | None) -> None:
        log("SIGTERM received: stopping after the current batch")
        stop.set()

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedded caller): stop only through the caller
        return None


def _train(job_dir: Path, profile: Profile, cache_dir: Path | None, stop: threading.Event) -> None:
    config = job_dir / "input" / "config"
    raw = _read_json(config / "hyperparameters.json", required=True)
    data_config = _read_json(config / "inputdataconfig.json", required=False)
    _read_json(config / "resourceconfig.json", required=False)  # single host: read only to validate it
    # 1. Validate every hyperparameter before touching data (SageMaker fails fast the same way).
    hp = parse_hyperparameters({k: str(v) for k, v in raw.items()}, profile=profile)
    resolved = hp.resolved()
    out = job_dir / "output"
    out.mkdir(parents=True, exist_ok=True)
    (out / "resolved_hyperparameters.json").write_text(json.dumps(resolved, indent=1, sort_keys=True))
    log(f"Resolved hyperparameters ({profile} defaults): {json.dumps(resolved, sort_keys=True)}")

    # 2. Data: decoded once into the uint8 cache, then memory-mapped.
    from tailor.algorithms.image_classification.data import load_split

    data_dir = job_dir / "input" / "data"
    cache = cache_dir or _default_cache()
    t0 = time.perf_counter()
    train = load_split(data_dir, "train", hp, data_config.get("train"), cache_dir=cache, required=True)
    val = load_split(data_dir, "validation", hp, data_config.get("validation"), cache_dir=cache, required=False)
    assert train is not None
    log(
        f"Loaded {len(train.images)} training and {len(val.images) if val else 0} validation images "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    if len(train.images) != hp.num_training_samples:
        log(f"Note: num_training_samples={hp.num_training_samples} but the train channel holds {len(train.images)}")

    # 3. Train (resuming from <job>/checkpoints when a matching checkpoint exists).
    from tailor.algorithms.image_classification.export import write_model
    from tailor.algorithms.image_classification.train import TrainingStopped, fit

    init = _initial_weights(data_dir / "model", hp)
    try:
        result = fit(
            hp,
            train.images,
            train.labels,
            val.images if val else None,
            val.labels if val else None,
            checkpoint_dir=job_dir / "checkpoints",
            log=log,
            stop=stop,
            init_weights=init,
        )
    except TrainingStopped:
        raise _Stopped() from None
    # 4. The artifact: model.json + weights.safetensors + model.onnx.
    tar = write_model(
        job_dir / "model" / "model.tar.gz",
        result.model,
        hp=hp,
        model_name=result.model_name,
        model_kwargs=result.model_kwargs,
        class_names=train.class_names,
        metrics=result.metrics,
    )
    log(f"Wrote {tar} ({tar.stat().st_size / 1e6:.1f} MB); final metrics {json.dumps(result.metrics)}")


def _default_cache() -> Path | None:
    try:
        from tailor.settings import load_settings

        return load_settings().cache_dir
    except TailorError:
        return None


def _initial_weights(model_channel: Path, hp: Hyperparameters) -> dict[str, Any] | None:
    """Incremental training: weights of a model.tar.gz in the ``model`` channel, checked to fit ``hp``."""
    if not model_channel.is_dir():
        if hp.use_pretrained_model:
            raise ValidationError(
                "use_pretrained_model=1 needs pretrained weights: give a 'model' channel holding a Tailor "
                "model.tar.gz of the same network (Tailor downloads nothing)"
            )
        return None
    tars = sorted(model_channel.glob("*.tar.gz"))
    if not tars:
        raise ValidationError(f"{model_channel}: the model channel holds no model.tar.gz")
    from safetensors.torch import load_file

    from tailor.algorithms.image_classification.networks import model_name
    from tailor.models.artifact import WEIGHTS, read_model_json, safe_extract

    meta = read_model_json(tars[0])
    want = model_name(hp.architecture, hp.num_layers)
    if meta["model"]["name"] != want or list(meta["image_shape"]) != list(hp.shape):
        raise ValidationError(
            f"{tars[0].name}: model {meta['model']['name']} {meta['image_shape']} does not match "
            f"{want} {list(hp.shape)} from the hyperparameters"
        )
    with tempfile.TemporaryDirectory(prefix="tailor-init-") as tmp:
        safe_extract(tars[0], Path(tmp))
        weights = load_file(str(Path(tmp) / WEIGHTS))
    if meta["num_classes"] != hp.num_classes:  # transfer learning: keep the body, fresh classifier head
        return {k: v for k, v in weights.items() if not k.startswith("head.")}
    return weights


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tailor.algorithms.image_classification")
    parser.add_argument("--job-dir", default="/opt/ml", type=Path, help="training contract root (default /opt/ml)")
    parser.add_argument("--defaults", choices=["tailor", "sagemaker"], default="tailor", help="default profile")
    parser.add_argument("--cache-dir", type=Path, default=None, help="decoded-image cache (default settings')")
    args = parser.parse_args(argv)
    return run(args.job_dir, profile=args.defaults, cache_dir=args.cache_dir)


if __name__ == "__main__":
    sys.exit(main())
