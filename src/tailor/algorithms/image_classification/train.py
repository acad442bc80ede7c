"""The training loop: ``build`` -> ``train_one_epoch`` / ``evaluate`` per epoch, driven by ``fit``.

Data stays a uint8 tensor (N, C, H, W) on the training device; augmentation runs on whole batches (random
crop +-2 px via pad + crop, horizontal flip; flips only under FLIPS_ONLY_BUDGET_S; colour jitter
and small affine transforms for the ``crop_color*`` types), never per image in Python. Log lines follow MXNet's
module so SageMaker metric regexes work:

    Epoch[3] Batch [50]	Speed: 712.40 samples/sec	accuracy=0.912345
    Epoch[3] Train-accuracy=0.912345
    Epoch[3] Train-cross-entropy=0.301234
    Epoch[3] Time cost=12.3
    Epoch[3] Validation-accuracy=0.903000
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tailor.algorithms.image_classification.augment import PAD, color_jitter, crop_flip, random_affine
from tailor.algorithms.image_classification.batchnorm import recalibrate_batchnorm, recalibrates
from tailor.algorithms.image_classification.checkpoints import (
    Checkpoint,
    latest_checkpoint,
    save_checkpoint,
)
from tailor.algorithms.image_classification.distributed import Context
from tailor.algorithms.image_classification.hyperparameters import Hyperparameters
from tailor.algorithms.image_classification.networks import (
    SHORT_BUDGET_S,
    classifier_name,
    create_model,
    fastnet_kwargs,
    inference_model,
    model_name,
    short_budget,
)
from tailor.errors import ValidationError

Log = Callable[[str], None]
WARMUP = 0.15  # fraction of the one-cycle schedule spent warming up


class TrainingStopped(Exception):
    """Raised when a stop was requested (SIGTERM); a checkpoint has been written."""


@dataclass
class Data:
    """A split on the training device: uint8 images (N, C, H, W) and labels (N,) int64 or (N, L) float32."""

    images: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def from_arrays(cls, images: np.ndarray, labels: np.ndarray, device: torch.device, multi_label: bool) -> Data:
        x = torch.from_numpy(np.array(images, dtype=np.uint8)).to(device)  # a copy: inputs may be read-only memmaps
        y = torch.from_numpy(np.asarray(labels, dtype=np.float32))
        y = y.float() if multi_label else y.reshape(-1).long()
        return cls(x, y.to(device))

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass
class Run:
    """Everything ``train_one_epoch`` needs besides the data."""

    hp: Hyperparameters
    model: nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    loss_fn: nn.Module
    log: Log
    use_amp: bool
    scaler: torch.amp.GradScaler | None
    elapsed: float = 0.0  # training seconds so far, including earlier runs resumed from a checkpoint
    stop: threading.Event = field(default_factory=threading.Event)
    generator: torch.Generator = field(default_factory=torch.Generator)
    dist: Context = field(default_factory=Context)
    net: nn.Module | None = None  # what the training step calls: the model, or its DDP wrapper
    frozen_body: bool | None = None  # the fine-tuning phase the net was last built for
    pad: int = PAD  # crop_flip's translation in pixels (0: flips only, FLIPS_ONLY_BUDGET_S)


@dataclass
class Result:
    model: nn.Module
    model_name: str
    model_kwargs: dict[str, object]
    metrics: dict[str, float]
    epochs: int


# --- device and threads -------------------------------------------------------------------------------------
def select_device(log: Log, ctx: Context | None = None) -> torch.device:
    ctx = ctx or Context()
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
        device = ctx.device if ctx.device.type == "cuda" else torch.device("cuda")
        log(f"Using CUDA device {torch.cuda.get_device_name(device)}")
        return device
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cores = max(1, cores // ctx.local_world_size)  # processes on one machine share its cores
    torch.set_num_threads(cores)
    log(f"Using CPU with {cores} threads (OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')})")
    return torch.device("cpu")


def channel_stats(images: np.ndarray, sample: int = 10_000) -> tuple[list[float], list[float]]:
    """Per-channel mean/std in pixel units from up to ``sample`` evenly spaced images (stored in the model)."""
    step = max(1, images.shape[0] // sample)
    x = np.asarray(images[::step], dtype=np.float32)
    mean = x.mean(axis=(0, 2, 3))
    std = np.maximum(x.std(axis=(0, 2, 3)), 1.0)
    return [float(m) for m in mean], [float(s) for s in std]


# --- build --------------------------------------------------------------------------------------------------
# Binding budgets up to this many seconds train with flips and no translation: random translation slows what a
# net learns per epoch and pays back only over more epochs than such a budget gives here (60 s: 2-3, 300 s: ~5).
# Alternating runs of bench_train's Tailor run, quiet (load 1.3-2.1), test accuracy, crop +-2 px vs flips only:
# 60 s (short net) 90.71-90.91 % (3 runs, mean 90.78) vs 91.43-91.78 (3, mean 91.63); 90 s 91.74 / 91.50 vs
# 92.57 / 92.11; 300 s (24/48/96, ~5 epochs) 92.96-93.32 (3, mean 93.10) vs 93.72-93.86 (3, mean 93.79, one
# through this code). Longer budgets keep translation: at 900 s one pair tied (94.08 against 94.18 % flips only).
# At 60 s, peak lr 0.3 (not adopted: learning_rate is resolved when the job is created, before the device, and so
# this rule, is known): +-2 px 90.74-91.24 (8, mean 91.00), +-1 px 91.64-91.72 (3), flips only 91.55-92.12 (6,
# mean 91.89), neither 90.70-91.28 (3). docs/MEASURED.md has the table.
FLIPS_ONLY_BUDGET_S = 300.0


def binding_budget(hp: Hyperparameters, name: str, device: torch.device, images: int, limit: float) -> bool:
    """Whether the fast net trains on a CPU under a time budget of at most ``limit`` seconds that ends before its
    epochs (``networks.short_budget``). Such budgets take the narrow net (``networks.SHORT_BUDGET_S``) and flips
    without translation (``FLIPS_ONLY_BUDGET_S``); both were measured on CPUs only, so a GPU keeps the defaults."""
    _, h, w = hp.shape
    work = float(images) * hp.epochs * h * w
    return name == "fastnet" and device.type == "cpu" and short_budget(hp.time_budget, work, limit)


def build(
    hp: Hyperparameters, train_images: np.ndarray, device: torch.device, log: Log, network: str | None = None
) -> tuple[nn.Module, str, dict[str, object], torch.optim.Optimizer]:
    """The network (``network`` overrides the one the hyperparameters name: incremental training keeps the
    earlier model's) and its optimizer. Pretrained networks keep the normalisation their weights expect."""
    c, h, w = hp.shape
    name = network or model_name(hp.architecture, hp.num_layers, pretrained=bool(hp.use_pretrained_model))
    kwargs: dict[str, object] = {"num_classes": hp.num_classes, "in_channels": c, "image_size": min(h, w)}
    if not hp.use_pretrained_model and name != "efficientnet_lite0":
        kwargs["mean"], kwargs["std"] = channel_stats(train_images)
    if name == "fastnet":  # its shape in model.json, so a later change of the default cannot change a saved net
        kwargs.update(fastnet_kwargs(binding_budget(hp, name, device, len(train_images), SHORT_BUDGET_S)))
    torch.manual_seed(hp.seed)
    model = create_model(name, **kwargs)
    if "mean" not in kwargs:  # the network's own (the ImageNet weights'), recorded for model.json
        kwargs["mean"] = [round(float(v), 4) for v in model.normalize.mean.flatten()]
        kwargs["std"] = [round(float(1 / v), 4) for v in model.normalize.inv_std.flatten()]
    mean, std = kwargs["mean"], kwargs["std"]
    model = model.to(device).to(memory_format=torch.channels_last)
    params = sum(p.numel() for p in model.parameters())
    shape = ""
    if name == "fastnet":  # which shape the budget chose (networks.SHORT_BUDGET_S), so the log says what runs
        shape = f", widths {'/'.join(map(str, kwargs['widths']))} and a stem of {kwargs['stem_width']} channels"
    log(
        f"Network {name}: {params / 1e6:.2f} M parameters ({params:,}){shape}, input {c}x{h}x{w}, normalisation "
        f"mean={mean} std={std}; trains for {hp.stopping_rule()}"
    )
    return model, name, kwargs, make_optimizer(hp, model)


def make_optimizer(hp: Hyperparameters, model: nn.Module) -> torch.optim.Optimizer:
    # Weight decay on conv/linear weights only: decaying BN scales and biases only hurts (airbench, timm).
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    lr = hp.learning_rate
    if hp.optimizer in ("sgd", "nag"):
        return torch.optim.SGD(groups, lr=lr, momentum=hp.momentum, nesterov=hp.optimizer == "nag" and hp.momentum > 0)
    if hp.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=(hp.beta_1, hp.beta_2), eps=hp.eps)
    return torch.optim.RMSprop(groups, lr=lr, alpha=hp.gamma, eps=hp.eps)


def make_loss(hp: Hyperparameters, train: Data) -> nn.Module:
    if hp.multi_label:
        pos_weight = None
        if hp.use_weighted_loss:  # up-weight rare positives: (negatives / positives) per label
            pos = train.labels.sum(0).clamp(min=1)
            pos_weight = (len(train) - pos) / pos
        return nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    weight = None
    if hp.use_weighted_loss:  # inverse class frequency, mean 1
        counts = torch.bincount(train.labels, minlength=hp.num_classes).float().clamp(min=1)
        weight = counts.sum() / (hp.num_classes * counts)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=hp.label_smoothing)


# --- schedule -----------------------------------------------------------------------------------------------
def progress(run: Run, epoch: int, batch: int, batches: int) -> float:
    """Fraction of training done: by elapsed time under a time budget, else by steps (whichever is further)."""
    by_steps = (epoch + batch / max(batches, 1)) / run.hp.epochs
    by_time = run.elapsed / run.hp.time_budget if run.hp.time_budget else 0.0
    return max(by_steps, by_time)


def learning_rate(hp: Hyperparameters, epoch: int, frac: float) -> float:
    """1. one_cycle: linear warm-up over 15 %, then linear decay to 0. 2. step: lr * factor^(steps passed)."""
    if hp.lr_schedule == "one_cycle":
        frac = min(frac, 1.0)
        return hp.learning_rate * (frac / WARMUP if frac < WARMUP else (1 - frac) / (1 - WARMUP))
    return hp.learning_rate * hp.lr_scheduler_factor ** sum(epoch >= s for s in hp.lr_steps)


# --- fine-tuning phases -------------------------------------------------------------------------------------
def head_only(hp: Hyperparameters, epoch: int) -> bool:
    """use_pretrained_model=1: the first head_warmup_epochs train only the new classifier."""
    return bool(hp.use_pretrained_model) and epoch < hp.head_warmup_epochs


def set_phase(run: Run, epoch: int) -> float:
    """Freeze or unfreeze the pretrained body for this epoch; returns the epoch's learning-rate factor.

    Frozen means no gradients (the backward pass stops at the classifier: a warm-up step costs about one
    forward pass) and the body in eval mode. After the warm-up every weight trains but BatchNorm keeps its
    ImageNet running statistics (eval mode), the usual choice for fine-tuning with small batches.
    The DistributedDataParallel wrapper is rebuilt on a phase change: it reduces only parameters that
    require grad when it is built.
    """
    frozen = head_only(run.hp, epoch)
    model = run.model
    model.train()
    head = classifier_name(model)
    if frozen:
        for name, module in model.named_children():
            if name != head:
                module.eval()
    elif run.hp.use_pretrained_model:
        # Keep ImageNet BatchNorm statistics while fine-tuning (scales and shifts still train): re-estimating
        # them from 32-image batches after the switch dropped flowers validation accuracy to chance in a test.
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
    if run.frozen_body != frozen or run.net is None:
        for name, param in model.named_parameters():
            param.requires_grad_(not frozen or name.startswith(head + "."))
        run.net = run.dist.wrap(model)
        run.frozen_body = frozen
        if frozen:
            run.log(f"Epoch[{epoch}] fine-tuning: classifier only, pretrained body frozen")
        elif run.hp.use_pretrained_model:
            run.log(f"Epoch[{epoch}] fine-tuning: whole network at learning_rate x {run.hp.fine_tune_lr_factor:g}")
    if run.hp.use_pretrained_model and not frozen:
        return run.hp.fine_tune_lr_factor
    return 1.0


# --- one epoch ----------------------------------------------------------------------------------------------
def train_one_epoch(run: Run, train: Data, epoch: int) -> dict[str, float]:
    hp, model, ctx = run.hp, run.model, run.dist
    lr_factor = set_phase(run, epoch)
    net = run.net or model
    # One permutation from the generator every rank seeds alike; each rank trains on its shard of it.
    t_aug = time.perf_counter()
    perm = ctx.shard(torch.randperm(len(train), generator=run.generator)).to(train.images.device)
    images, labels = train.images[perm], train.labels[perm]
    n, bs = images.shape[0], hp.mini_batch_size
    if hp.augmentation_type:
        images = crop_flip(images, run.generator, run.pad)
    run.elapsed += time.perf_counter() - t_aug  # the epoch's shuffle + batched crop/flip count as training time
    batches = n // bs if n >= 2 * bs else math.ceil(n / bs)  # drop a ragged last batch (BatchNorm needs > 1)
    seen = correct = 0
    loss_sum = 0.0
    t_epoch = t_log = time.perf_counter()
    seen_log = 0
    for b in range(batches):
        stop_now = run.stop.is_set()
        if ctx.active:  # every rank ends at the same step: the slowest clock and any stop request win
            run.elapsed, agreed = ctx.max([run.elapsed, float(stop_now)])
            # The agreed flag, not the live one: a SIGTERM landing on one rank after this all-reduce waits for
            # the next step, or that rank would leave while the others enter the step's collectives.
            stop_now = bool(agreed)
        frac = progress(run, epoch, b, batches)
        if frac >= 1.0 and run.hp.time_budget:
            break
        if stop_now:
            run.stop.set()
            raise TrainingStopped()
        lr = learning_rate(hp, epoch, frac) * lr_factor
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        x = images[b * bs : (b + 1) * bs].float().contiguous(memory_format=torch.channels_last)
        y = labels[b * bs : (b + 1) * bs]
        if hp.augmentation_type in ("crop_color", "crop_color_transform"):
            x = color_jitter(x, run.generator)
        if hp.augmentation_type == "crop_color_transform":
            x = random_affine(x, run.generator)
        with torch.autocast(run.device.type, dtype=torch.float16, enabled=run.use_amp):
            logits = net(x)
            loss = run.loss_fn(logits.float(), y)
        run.optimizer.zero_grad(set_to_none=True)
        if run.scaler is not None:
            run.scaler.scale(loss).backward()
            run.scaler.step(run.optimizer)
            run.scaler.update()
        else:
            loss.backward()
            run.optimizer.step()
        k = y.shape[0]
        seen += k
        seen_log += k
        loss_sum += float(loss.detach()) * k
        correct += _correct(logits.detach(), y, hp.multi_label)
        run.elapsed += time.perf_counter() - t0
        if (b + 1) % hp.log_interval == 0:
            now = time.perf_counter()
            run.log(
                f"Epoch[{epoch}] Batch [{b + 1}]\tSpeed: {seen_log * ctx.world_size / (now - t_log):.2f} samples/sec\t"
                f"accuracy={correct / max(seen, 1):.6f}\tlr={lr:.5f}\ttrain_seconds={run.elapsed:.1f}"
            )
            t_log, seen_log = now, 0
    seen, correct, loss_sum = ctx.sum([seen, correct, loss_sum])  # over all ranks
    run.elapsed = ctx.max([run.elapsed])[0]  # the end-of-epoch budget check must agree on every rank
    return {
        "accuracy": correct / max(seen, 1),
        "cross-entropy": loss_sum / max(seen, 1),
        "time": time.perf_counter() - t_epoch,
        "samples": seen,
    }


def _correct(logits: torch.Tensor, y: torch.Tensor, multi_label: int) -> float:
    if multi_label:  # element-wise accuracy at threshold 0.5, as MXNet's multi-label accuracy
        return float(((logits > 0).float() == y).float().mean(1).sum())
    return float((logits.argmax(1) == y).sum())


@torch.inference_mode()
def evaluate(
    model: nn.Module, data: Data, hp: Hyperparameters, batch_size: int = 256, ctx: Context | None = None
) -> dict[str, float]:
    """Accuracy, top-k accuracy and cross-entropy (no label smoothing) on a split, with TTA when enabled.

    Under torch.distributed each rank scores every W-th image and the sums are all-reduced, so every rank
    gets the same figures (and takes the same early-stopping decision)."""
    ctx = ctx or Context()
    net = inference_model(model, bool(hp.tta)).eval()
    correct = topk = 0.0
    loss_sum = 0.0
    images, labels = data.images, data.labels
    if ctx.active:
        images, labels = images[ctx.rank :: ctx.world_size], labels[ctx.rank :: ctx.world_size]
    for i in range(0, images.shape[0], batch_size):
        x = images[i : i + batch_size].float().contiguous(memory_format=torch.channels_last)
        y = labels[i : i + batch_size]
        logits = net(x).float()
        if hp.multi_label:
            loss_sum += float(F.binary_cross_entropy_with_logits(logits, y, reduction="sum")) / y.shape[1]
        else:
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            if hp.top_k:
                topk += float((logits.topk(hp.top_k, dim=1).indices == y[:, None]).any(1).sum())
        correct += _correct(logits, y, hp.multi_label)
    model.train()
    correct, topk, loss_sum = ctx.sum([correct, topk, loss_sum])
    n = max(len(data), 1)
    out = {"accuracy": correct / n, "cross-entropy": loss_sum / n}
    if hp.top_k and not hp.multi_label:
        out[f"top_k_accuracy_{hp.top_k}"] = topk / n
    return out


def load_exact(model: nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    """Every tensor of the network from ``state``, same shapes; the error names the first key that differs."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        key = (missing or unexpected)[0]
        raise ValidationError(
            f"initial weights do not fit {name}: key {key!r} is {'missing' if missing else 'unexpected'}"
        )
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise ValidationError(
                f"initial weights do not fit {name}: {key!r} has shape {tuple(value.shape)}, "
                f"the network {tuple(own[key].shape)}"
            )
    model.load_state_dict(state)


# --- fit ----------------------------------------------------------------------------------------------------
def fit(
    hp: Hyperparameters,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
    *,
    checkpoint_dir: Path | None = None,
    log: Log = print,
    stop: threading.Event | None = None,
    init_weights: dict[str, torch.Tensor] | None = None,
    network: str | None = None,
    ctx: Context | None = None,
    zoo: Path | None = None,
) -> Result:
    """Train under ``hp``; resumes from the newest matching checkpoint in ``checkpoint_dir``.

    ``init_weights`` (incremental training) must fit the network exactly; otherwise ``use_pretrained_model=1``
    loads ImageNet weights from the zoo (``pretrained.pretrained_state``) under a fresh classifier. Under
    torch.distributed (``ctx``) every rank calls this; only rank 0 writes checkpoints.
    """
    ctx = ctx or Context()
    device = select_device(log, ctx)
    use_amp = hp.precision_dtype == "float16" and device.type == "cuda"
    if hp.precision_dtype == "float16" and not use_amp:
        log(
            "precision_dtype=float16: no fast half precision on this CPU (bf16 autocast measured 10-20x slower "
            "here); training in float32"
        )
    multi = bool(hp.multi_label)
    train = Data.from_arrays(train_images, train_labels, device, multi)
    val = Data.from_arrays(val_images, val_labels, device, multi) if val_images is not None else None
    model, name, kwargs, optimizer = build(hp, train_images, device, log, network=network)
    if init_weights is not None:
        load_exact(model, init_weights, name)
        log(f"Initialised all weights of {name} from the model channel (incremental training)")
    elif hp.use_pretrained_model:
        from tailor.algorithms.image_classification.pretrained import apply_pretrained, pretrained_state

        state = pretrained_state(name, source=hp.pretrained_weights, sha256=hp.pretrained_sha256, zoo=zoo, log=log)
        count = apply_pretrained(model, state, network=name, classifier=classifier_name(model))
        with torch.no_grad():  # a zero classifier starts at uniform predictions (loss ln C), not random logits
            for param in getattr(model, classifier_name(model)).parameters():
                param.zero_()
        log(f"Loaded {count} ImageNet tensors into {name}; new {hp.num_classes}-class {classifier_name(model)}")
    run = Run(
        hp=hp,
        model=model,
        optimizer=optimizer,
        device=device,
        loss_fn=make_loss(hp, train),
        log=log,
        use_amp=use_amp,
        scaler=torch.amp.GradScaler("cuda") if use_amp else None,
        stop=stop or threading.Event(),
        dist=ctx,
    )
    run.generator.manual_seed(hp.seed)
    if hp.augmentation_type and binding_budget(hp, name, device, len(train_images), FLIPS_ONLY_BUDGET_S):
        run.pad = 0
        log(
            f"Augmentation {hp.augmentation_type}: horizontal flips without translation (a time budget of "
            f"{FLIPS_ONLY_BUDGET_S:g} s or less)"
        )
    resolved = hp.resolved()
    start, best = 0, None
    if checkpoint_dir is not None and (ckpt := latest_checkpoint(checkpoint_dir, resolved)) is not None:
        model.load_state_dict(ckpt.model_state)
        optimizer.load_state_dict(ckpt.optimizer_state)
        start, best, run.elapsed = ckpt.epoch, ckpt.best_accuracy, ckpt.elapsed
        run.generator.manual_seed(hp.seed + start)  # a fresh, reproducible stream for the remaining epochs
        log(f"Resumed from checkpoint after epoch {start - 1} ({run.elapsed:.1f} s of training so far)")

    def checkpoint(epoch_done: int, name: str | None = None) -> None:
        if checkpoint_dir is not None and ctx.is_main:
            ckpt = Checkpoint(epoch_done, run.elapsed, best, resolved, model.state_dict(), optimizer.state_dict())
            save_checkpoint(checkpoint_dir, ckpt, name=name)

    metrics: dict[str, float] = {}
    bad_epochs, epoch = 0, start
    for epoch in range(start, hp.epochs):
        try:
            tm = train_one_epoch(run, train, epoch)
        except TrainingStopped:
            checkpoint(epoch, name="last")
            log(f"Stop requested: checkpoint written after {epoch} completed epochs")
            raise
        if tm["samples"] == 0:
            break
        log(f"Epoch[{epoch}] Train-accuracy={tm['accuracy']:.6f}")
        log(f"Epoch[{epoch}] Train-cross-entropy={tm['cross-entropy']:.6f}")
        log(f"Epoch[{epoch}] Time cost={tm['time']:.3f}")
        log(f"Epoch[{epoch}] Train-seconds={run.elapsed:.1f}")  # cumulative, evaluation excluded (the budget's clock)
        metrics = {"train:accuracy": tm["accuracy"], "train:cross-entropy": tm["cross-entropy"]}
        if recalibrates(hp) and not ctx.active:
            recalibrate_batchnorm(model, train.images, hp.mini_batch_size, hp.seed + epoch)
        if val is not None:
            vm = evaluate(model, val, hp, ctx=ctx)
            for key, value in vm.items():
                log(f"Epoch[{epoch}] Validation-{key}={value:.6f}")
                metrics[f"validation:{key}"] = value
            improved = best is None or vm["accuracy"] > best * (1 + hp.early_stopping_tolerance)
            if improved:
                best, bad_epochs = vm["accuracy"], 0
                checkpoint(epoch + 1, name="best")
            else:
                bad_epochs += 1
        checkpoint(epoch + 1, name="last")  # overwritten each epoch: what a restarted job resumes from
        if hp.checkpoint_frequency and (epoch + 1) % hp.checkpoint_frequency == 0:
            checkpoint(epoch + 1)  # kept: SageMaker's periodic checkpoints
        if hp.early_stopping and epoch + 1 >= hp.early_stopping_min_epochs and bad_epochs >= hp.early_stopping_patience:
            log(f"Early stopping after epoch {epoch}: no improvement for {bad_epochs} epochs")
            break
        if hp.time_budget and run.elapsed >= hp.time_budget:
            log(
                f"Time budget of {hp.time_budget:g} s reached after epoch {epoch} (training time only: the "
                "per-epoch validation is not counted)"
            )
            break
    metrics["training_seconds"] = run.elapsed
    return Result(model=model, model_name=name, model_kwargs=kwargs, metrics=metrics, epochs=epoch + 1)
