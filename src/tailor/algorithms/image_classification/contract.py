"""The SageMaker training contract around ``train.fit``.

Reads ``<job>/input/config/{hyperparameters,inputdataconfig,resourceconfig}.json`` and
``<job>/input/data/<channel>/`` (train, validation, train_lst, validation_lst, model), writes
``<job>/model/model.tar.gz``, ``<job>/checkpoints/``, ``<job>/output/resolved_hyperparameters.json`` and,
on failure, ``<job>/output/failure`` (first 1024 chars = FailureReason) with a non-zero exit status.
SIGTERM (StopTrainingJob) writes a checkpoint and exits with 143 within one training batch.

Under ``torchrun`` (InstanceCount > 1) every process runs this: each joins the process group, writes its own
``input/config/hosts/algo-<n>/resourceconfig.json``, trains on its shard; rank 0 alone logs, checkpoints
and writes the artifact and resolved hyperparameters (``distributed.py``).

Incremental training: a ``model`` channel holding an earlier job's model.tar.gz starts from all of its weights
(and its network); architecture, num_layers, image_shape and num_classes must match it, else a one-line error.
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
    from tailor.algorithms.image_classification import distributed

    job_dir = Path(job_dir)
    stop = threading.Event()
    previous = _install_sigterm(stop)
    ctx = distributed.Context()
    try:
        ctx = distributed.from_env()
        _train(job_dir, profile, cache_dir, stop, ctx)
        return 0
    except _Stopped:
        return EXIT_STOPPED
    except TailorError as err:
        log(f"Training failed{_rank(ctx)}: {err}")
        _fail(job_dir, ctx, f"{type(err).__name__}: {err}" if not isinstance(err, ValidationError) else str(err))
        return EXIT_FAILED
    except Exception as err:  # an algorithm bug (or a lost peer): the job must still fail cleanly with a reason
        traceback.print_exc()
        _fail(job_dir, ctx, f"AlgorithmError{_rank(ctx)}: {type(err).__name__}: {str(err).strip()[:300]}")
        return EXIT_FAILED
    finally:
        ctx.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _rank(ctx: Any) -> str:
    return f" on rank {ctx.rank} of {ctx.world_size}" if ctx.active else ""


def _fail(job_dir: Path, ctx: Any, reason: str) -> None:
    """The first failing process's reason is the job's (a peer that dies makes the others fail after it)."""
    if not ctx.active or not (job_dir / "output" / "failure").is_file():
        write_failure(job_dir, reason)


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


def _train(job_dir: Path, profile: Profile, cache_dir: Path | None, stop: threading.Event, ctx: Any) -> None:
    from tailor.algorithms.image_classification.distributed import write_resource_config

    config = job_dir / "input" / "config"
    raw = _read_json(config / "hyperparameters.json", required=True)
    data_config = _read_json(config / "inputdataconfig.json", required=False)
    _read_json(config / "resourceconfig.json", required=False)  # read to validate it
    say = log if ctx.is_main else _quiet  # one logger: rank 0
    if ctx.active:
        mine = write_resource_config(job_dir, ctx)
        print(f"[rank {ctx.rank}] torch.distributed: {ctx.world_size} processes, {mine}", flush=True)
    # 1. Validate every hyperparameter before touching data (SageMaker fails fast the same way).
    hp = parse_hyperparameters({k: str(v) for k, v in raw.items()}, profile=profile)
    resolved = hp.resolved()
    out = job_dir / "output"
    out.mkdir(parents=True, exist_ok=True)
    if ctx.is_main:
        (out / "resolved_hyperparameters.json").write_text(json.dumps(resolved, indent=1, sort_keys=True))
    say(f"Resolved hyperparameters ({profile} defaults): {json.dumps(resolved, sort_keys=True)}")
    if ctx.active:
        say(
            f"Distributed: {ctx.world_size} workers x mini_batch_size {hp.mini_batch_size} = global batch "
            f"{ctx.world_size * hp.mini_batch_size} (mini_batch_size is per worker, as SageMaker's dist_sync)"
        )

    # 2. Data: decoded once into the uint8 cache, then memory-mapped.
    from tailor.algorithms.image_classification.data import load_split

    data_dir = job_dir / "input" / "data"
    cache = cache_dir or _default_cache()
    t0 = time.perf_counter()
    if not ctx.is_main:
        ctx.barrier()  # rank 0 decodes into the cache first; the others then read it (no double decode)
    train = load_split(data_dir, "train", hp, data_config.get("train"), cache_dir=cache, required=True)
    val = load_split(data_dir, "validation", hp, data_config.get("validation"), cache_dir=cache, required=False)
    if ctx.is_main:
        ctx.barrier()
    assert train is not None
    say(
        f"Loaded {len(train.images)} training and {len(val.images) if val else 0} validation images "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    if len(train.images) != hp.num_training_samples:
        say(f"Note: num_training_samples={hp.num_training_samples} but the train channel holds {len(train.images)}")

    # 3. Train (resuming from <job>/checkpoints when a matching checkpoint exists).
    from tailor.algorithms.image_classification.export import write_model
    from tailor.algorithms.image_classification.train import TrainingStopped, fit

    init, network = _initial_weights(data_dir / "model", hp)
    if init is not None and hp.use_pretrained_model:
        say("use_pretrained_model=1 with a model channel: continuing from the model channel's weights")
    try:
        result = fit(
            hp,
            train.images,
            train.labels,
            val.images if val else None,
            val.labels if val else None,
            checkpoint_dir=job_dir / "checkpoints",
            log=say,
            stop=stop,
            init_weights=init,
            network=network,
            ctx=ctx,
        )
    except TrainingStopped:
        raise _Stopped() from None
    # 4. The artifact: model.json + weights.safetensors + model.onnx, written once (rank 0).
    if not ctx.is_main:
        return
    tar = write_model(
        job_dir / "model" / "model.tar.gz",
        result.model,
        hp=hp,
        model_name=result.model_name,
        model_kwargs=result.model_kwargs,
        class_names=train.class_names,
        metrics=result.metrics,
        calibration=calibration_sample(train.images),
    )
    log(f"Wrote {tar} ({tar.stat().st_size / 1e6:.1f} MB); final metrics {json.dumps(result.metrics)}")


def calibration_sample(images: Any, n: int = 256, seed: int = 0) -> Any:
    """``n`` training images drawn without replacement (seeded): the artifact's INT8 calibration sample."""
    import numpy as np

    pick = np.sort(np.random.default_rng(seed).choice(len(images), size=min(n, len(images)), replace=False))
    return np.asarray(images[pick], dtype=np.uint8)


def _default_cache() -> Path | None:
    try:
        from tailor.settings import load_settings

        return load_settings().cache_dir
    except TailorError:
        return None


def _quiet(message: str) -> None:
    """Ranks other than 0 stay silent: one log, one set of metric lines."""


def _initial_weights(model_channel: Path, hp: Hyperparameters) -> tuple[dict[str, Any] | None, str | None]:
    """Incremental training: (weights, network name) of the model.tar.gz in the ``model`` channel.

    The earlier model must be the network the hyperparameters describe: same architecture and num_layers,
    image_shape and num_classes (a one-line ValidationError names the first that differs). Its network is
    kept (a ResNet fine-tuned from ImageNet stays the torchvision-layout ResNet).
    """
    if not model_channel.is_dir():
        return None, None
    tars = sorted(model_channel.glob("*.tar.gz"))
    if not tars:
        raise ValidationError(f"{model_channel}: the model channel holds no model.tar.gz")
    from safetensors.torch import load_file

    from tailor.artifact import WEIGHTS, read_model_json, safe_extract

    meta = read_model_json(tars[0])
    name = tars[0].name
    earlier_layers = meta.get("num_layers")
    checks = [
        ("architecture", meta.get("architecture"), hp.architecture),
        ("image_shape", ",".join(str(v) for v in meta.get("image_shape", [])), hp.image_shape),
        ("num_classes", meta.get("num_classes"), hp.num_classes),
    ]
    if hp.architecture == "resnet":
        checks.insert(1, ("num_layers", earlier_layers, hp.num_layers))
    for key, earlier, now in checks:
        if earlier != now:
            raise ValidationError(
                f"model channel {name}: {key} is {earlier} in the earlier model but {now} in the hyperparameters; "
                f"incremental training needs the same {key} (set {key}={earlier} or train from scratch)"
            )
    with tempfile.TemporaryDirectory(prefix="tailor-init-") as tmp:
        safe_extract(tars[0], Path(tmp))
        weights = load_file(str(Path(tmp) / WEIGHTS))
    return weights, str(meta["model"]["name"])


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
