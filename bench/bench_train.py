"""Training benchmark: Fashion-MNIST test accuracy vs wall-clock, Tailor beside MXNet 1.9.1, same machine, same run.

1. Tailor's default (fast net, one-cycle over a time budget): time to 91.1 % test accuracy and accuracy at the
   budget (``--budget 300``; ``--long`` adds a 900 s run). Goals (round two): 91.1 % in <= 60 s, >= 94.0 % at
   5 min, >= 95.0 % at 15.
2. ResNet-20 epoch time and accuracy: MXNet 1.9.1 ``mx.mod.Module.fit`` (SGD lr 0.1, momentum 0.9, wd 1e-4,
   batch 128, ImageRecordIter over .rec files packed by ``mx.recordio`` from the same IDX arrays) vs Tailor's
   ResNet-20 with the same recipe (goal >= 2x); then the ratio of times to 91.1 % (goal >= 10x for Tailor's
   default). ``--mxnet-epochs N`` lets MXNet train until 91.1 % or N epochs (then its time is a bound), and the
   ratio is also printed at the best accuracy both sides reached, a real figure when neither got to 91.1 %.

Round two, one run on a quiet machine (``--target-budget 60 --budget 90 --resnet-epochs 1 --mxnet-epochs 8``,
load average 1.4 before, 1.9 after; OMP_WAIT_POLICY=PASSIVE for both, as jobs run; 2,004 s in all). This VM
was slower than in round one throughout (fast net ~1,000-1,070 img/s against ~1,800-1,900 then):
  Tailor default: 89.31 % at a 60 s budget (1 epoch), 90.75 % at 90 s (87.63 % after its first epoch);
  91.1 % not reached in either (goal <= 60 s: not met).
  ResNet-20 epoch: Tailor 208.3 s, MXNet 196.4 s: 0.94x (goal >= 2x: not met; round one 1.24x). Spin-waiting
  OpenMP threads would make Tailor's 1.19x faster (321-332 vs 271-278 img/s, alternating, same machine), but
  they collapse ~4x when the other core is busy (docs/MEASURED.md), so jobs keep PASSIVE.
  MXNet ResNet-20, 8 epochs at constant lr 0.1, test accuracy after each: 83.7 / 79.7 / 88.8 / 85.7 / 76.0 /
  86.6 / 90.47 / 90.06 % (1,518 s); 91.1 % not reached, so its time to 91.1 % is > 1,518 s against Tailor's
  > 90 s: no ratio. At the best accuracy both reached, 90.47 %: MXNet 1,334 s (7 epochs), Tailor's default
  90.2 s: 14.8x (read off the per-epoch lines of this run; the bench prints that line since).
Round five, one run on a quiet machine (``--target-budget 60 --budget 300 --resnet-epochs 1 --mxnet-epochs 1``,
load average 1.0 before, 1.8 after; 797 s in all):
  Tailor default: **91.35 % at a 60 s budget** (2 epochs of the short net, flips only: train.FLIPS_ONLY_BUDGET_S), so
  91.1 % in <= 60 s is met in the bench's own run; alternating 60 s runs gave a mean of 91.63 % (3 runs,
  docs/MEASURED.md). 92.86 % at 300 s (5 epochs: the 24/48/96 net ran at ~1,040 img/s this day against
  ~1,900 on a fast one), still with translation; flips only, shipped for 300 s after this run, gave 93.72-93.86 %
  (mean 93.79, 3 runs) in alternating runs against 92.96-93.32 % (mean 93.10) (goal >= 94.0 %: not met).
  ResNet-20 epoch: Tailor 189.3 s, MXNet 175.2 s: 0.93x (goal >= 2x: not met). MXNet's one epoch reached
  83.65 %; Tailor's default got there in 32.4 s (5.4x); time to 91.1 %: > 2.9x, a bound (MXNet ran one epoch).
Round six, one run on a quiet machine (``--target-budget 60 --budget 300 --resnet-epochs 1 --mxnet-epochs 6``,
load average 1.0 before, 1.7 after; 1,816 s in all):
  Tailor default: **91.63 % at a 60 s budget** (2 epochs of the short net, 91.1 % at the end of the second, 60.0 s);
  93.62 % at 300 s (6 epochs; 93.73-93.84 % in the runs around it, docs/MEASURED.md; goal >= 94.0 %: not met).
  ResNet-20 epoch: Tailor 199.1 s, MXNet 178.6 s: 0.90x (goal >= 2x: not met).
  MXNet ResNet-20, 6 epochs at constant lr 0.1: 83.65 / 79.71 / 88.90 / 85.71 / 76.00 / 86.55 % (1,125 s;
  round two's first six epochs to the rounding: its run is deterministic, and round two's 8 epochs peaked at 90.47 %).
  **Time to 91.1 %, MXNet ResNet-20 / Tailor default: > 18.8x** (goal >= 10x: met, as a lower bound: MXNet did
  not reach 91.1 % in 6 epochs). At 88.90 %, the best both reached: MXNet 554 s, Tailor 32.0 s: 17.3x.
Round seven, one run on a fast day of this VM (``--target-budget 60 --budget 300 --long --resnet-epochs 1``,
load average 0.9 before, 1.9 after; 1,590 s in all; the 24/48/96 net at ~2,100-2,400 img/s against ~1,000-1,200 in
round six): **91.1 % at 43.7 s** (92.81 % at the 60 s budget); **94.36 % at 300 s** (12 epochs; 94.16 and 94.58 %
in the runs around it: goal >= 94.0 % met this day, not on round six's slower day); 94.59 % at 900 s
(35 epochs; goal >= 95.0 %: not met). ResNet-20 epoch: Tailor 84.3 s, MXNet 89.1 s: 1.06x (goal >= 2x: not met).
3. ``--parity`` (``python -m bench.bench_train --parity --parity-train=3500 --parity-epochs=4 --seeds=0,1,2``):
   the same ResNet-20 recipe, per epoch and per seed, both runners trained from the very same .rec files (packed
   once by MXNet); test accuracy and loss on the 10k test set after every epoch. ``--parity-train=0``: all 60k.

``--quick`` validates the pipeline in ~3 minutes (subsets, short budgets); its figures are not the benchmark.
Training time excludes evaluation; evaluation runs on the 10k test set after every epoch.

Parity, measured 2026-11-30 on the shared 2-core VM at load average 10-16 (other engineers' test suites; times
are meaningless, accuracies are not). ResNet-20, 3,500 training images, test accuracy % after epochs 1-4; rows
marked * read the IDX arrays the .rec files are packed from (lossless PNG, the same pixels), the others the .rec:

    Tailor before (PyTorch default init) * seed 0: 10.5 16.1 62.6 57.8  (validation loss 16.6, 6.9 after 1-2)
    Tailor, MXNet's He init                seeds 0/1/2, epoch 1: 40.3 42.2 29.9; 2: 53.7 64.4 54.6;
                                                                3: 68.1 68.5 56.7; 4: 68.8 70.0 73.7
    Tailor, He init + BatchNorm recalibrated before evaluation (the shipped code) *
                                           seeds 0/1/2, epoch 1: 67.9 61.2 64.7; 2: 74.4 67.9 73.6;
                                                                3: 77.1 74.7 72.8; 4: 77.4 76.8 76.9
    MXNet 1.9.1 Module.fit                 seeds 0/1/2, epoch 1: 33.3 37.8 24.3; 2: 44.4 30.8 59.3;
                                                                3: 68.4 55.7 45.7; 4: -- 66.9 66.7
    Means, epochs 1-4: Tailor 64.6 / 72.0 / 74.9 / 77.0 %, MXNet 31.8 / 44.8 / 56.6 / 66.8 % (epoch 4: seeds 1-2;
    seed 0's run was cut off by its time limit). Load average 9.7-16 during the runs, 5.6 at the end.

Cause: PyTorch's default conv init has 1/6 of the variance of MXNet's Xavier(gaussian, in, 2); behind BatchNorm
that is a 6x larger effective step at lr 0.1, and the 10-step EMA of the running statistics (momentum 0.1, the
same as MXNet's 0.9) lagged the weights. He init alone brought 3,500 images to MXNet's level, but on 2,000 the
lag remained; recomputing the running statistics from the current weights before each evaluation (2,048
training images, forward only) removes it. Checked by reading both,
not measured one by one: BN momentum (identical), epsilon (2e-5 vs 1e-5, negligible beside variances of order
1), evaluation mode (both use running statistics), fix_gamma (MXNet fixes gamma only on its input BN, which
Tailor's fixed Normalize replaces), learning-rate warm-up (neither has one), weight decay on BN (MXNet decays
gamma, Tailor does not). Left as is: MXNet's ImageRecordIter pads crops with 255 (its fill_value default),
Tailor with 0.
2,000 images, seed 0, epochs 1-2 (validation on 1,000 test images): He init alone 11.1 / 32.9 % (loss 19.3 /
2.6), with recalibration 49.3 / 69.6 % (loss 1.28 / 0.88); tests/algorithms/test_train.py holds it.
Full data (``--parity-train=0 --parity-epochs=2 --seeds=0``, 60k training images, quiet machine, load 0.1 at the
start, 1.9 at the end; ~180 s per epoch for each runner), test accuracy % (loss) after epochs 1-2:
Tailor 85.8 (0.40), 89.5 (0.29); MXNet 1.9.1 83.7 (0.46), 79.7 (0.60). One seed only.
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

TARGET = 0.911  # the seed's figure: 91.10 % after 40 epochs, ~5 h on one K80
_MIRROR = os.environ.get("TAILOR_DATASET_MIRROR", "")
DATA = (
    Path(_MIRROR.removeprefix("file://")) / "fashion-mnist"
    if _MIRROR.startswith("file://")
    else Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fashion-mnist"
)
# SageMaker's image-classification recipe for ResNet-20 (lr 0.1 constant, no warm-up), as both runners use it.
RESNET20_RECIPE = {
    "num_layers": "20",
    "mini_batch_size": "128",
    "learning_rate": "0.1",
    "optimizer": "sgd",
    "momentum": "0.9",
    "weight_decay": "0.0001",
    "augmentation_type": "crop",
}


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path) as fh:
        raw = fh.read()
    ndim = raw[3]
    dims = np.frombuffer(raw[4 : 4 + 4 * ndim], ">u4").astype(int)
    return np.frombuffer(raw[4 + 4 * ndim :], np.uint8).reshape(dims)


def load(root: Path, n_train: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x = _idx(root / "train-images-idx3-ubyte.gz")[:n_train, None]
    y = _idx(root / "train-labels-idx1-ubyte.gz")[:n_train].astype(np.float32)
    xt = _idx(root / "t10k-images-idx3-ubyte.gz")[:, None]
    yt = _idx(root / "t10k-labels-idx1-ubyte.gz").astype(np.float32)
    return np.ascontiguousarray(x), y, np.ascontiguousarray(xt), yt


def tailor_run(raw: dict[str, str], data: tuple[np.ndarray, ...], label: str) -> dict[str, Any]:
    """Train via ``fit``; returns training seconds to TARGET (or nan), final accuracy, first epoch's time and the
    per-epoch test accuracy and loss (``accs``, ``losses``)."""
    from tailor.algorithms.image_classification.hyperparameters import parse_hyperparameters
    from tailor.algorithms.image_classification.train import fit

    x, y, xt, yt = data
    hp = parse_hyperparameters(
        {"num_classes": "10", "num_training_samples": str(len(x)), "image_shape": "1,28,28", **raw}
    )
    state: dict[str, Any] = {"t_target": float("nan"), "acc": 0.0, "epoch_time": float("nan"), "train_s": 0.0}
    state["accs"], state["losses"], state["times"] = [], [], []

    def log(line: str) -> None:
        if "Validation-cross-entropy=" in line:
            state["losses"].append(float(line.split("=")[1]))
        if "Time cost=" in line and line.startswith("Epoch[0] "):  # the epoch's wall time, evaluation excluded
            state["epoch_time"] = float(line.split("=")[1])
        if "Train-seconds=" in line:  # cumulative training time, the time budget's clock (evaluation excluded)
            state["train_s"] = float(line.split("=")[1])
        if "Validation-accuracy=" in line:
            state["acc"] = float(line.split("=")[1])
            state["accs"].append(state["acc"])
            state["times"].append(state["train_s"])
        if "Speed:" in line or "Validation-accuracy" in line:
            print(f"  [{label}] {line}", flush=True)

    result = fit(hp, x, y, xt, yt, log=log)
    state["train_s"] = result.metrics["training_seconds"]
    state["t_target"] = time_to(state, TARGET)
    return state


MXNET_SCRIPT = r"""
import os, random, sys, time, json, numpy as np, mxnet as mx, cv2
out, epochs, seed = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 0
stop_at = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0  # test accuracy that ends training (0: all epochs)
random.seed(seed); np.random.seed(seed); mx.random.seed(seed)
def pack(x, y, name):
    os.makedirs(f"{out}/{name}", exist_ok=True)
    rec = mx.recordio.MXIndexedRecordIO(f"{out}/{name}/{name}.idx", f"{out}/{name}/{name}.rec", "w")
    for i, (img, lab) in enumerate(zip(x, y)):
        header = mx.recordio.IRHeader(0, float(lab), i, 0)
        rec.write_idx(i, mx.recordio.pack_img(header, img[0], quality=3, img_fmt=".png"))
    rec.close()
if not os.path.exists(f"{out}/train/train.rec"):  # packed once; later runs (seeds) reuse the same files
    d = np.load(sys.argv[1]); t = time.perf_counter(); pack(d["x"], d["y"], "train"); pack(d["xt"], d["yt"], "test")
    print(f"packed .rec in {time.perf_counter() - t:.1f} s", flush=True)
if epochs == 0:
    sys.exit(0)
BN = dict(fix_gamma=False, eps=2e-5, momentum=0.9)
def conv(x, nf, k, stride, name):
    return mx.sym.Convolution(x, num_filter=nf, kernel=(k, k), stride=stride, pad=(k // 2, k // 2),
                              no_bias=True, name=name)
def unit(x, nf, stride, match, name):
    a1 = mx.sym.Activation(mx.sym.BatchNorm(x, name=name + "_bn1", **BN), act_type="relu")
    c1 = conv(a1, nf, 3, stride, name + "_c1")
    a2 = mx.sym.Activation(mx.sym.BatchNorm(c1, name=name + "_bn2", **BN), act_type="relu")
    c2 = conv(a2, nf, 3, (1, 1), name + "_c2")
    return c2 + (x if match else conv(a1, nf, 1, stride, name + "_sc"))
data = mx.sym.Variable("data")
body = mx.sym.BatchNorm(data, fix_gamma=True, eps=2e-5, name="bn_data")
body = mx.sym.Convolution(body, num_filter=16, kernel=(3, 3), pad=(1, 1), no_bias=True, name="conv0")
for s, nf in enumerate([16, 32, 64]):
    for u in range(3):
        body = unit(body, nf, (2, 2) if (s > 0 and u == 0) else (1, 1), not (s > 0 and u == 0), f"s{s}u{u}")
body = mx.sym.Activation(mx.sym.BatchNorm(body, fix_gamma=False, name="bn_out"), act_type="relu")
body = mx.sym.Flatten(mx.sym.Pooling(body, global_pool=True, kernel=(7, 7), pool_type="avg"))
net = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(body, num_hidden=10), name="softmax")
kw = dict(data_shape=(1, 28, 28), batch_size=128, preprocess_threads=2)
train = mx.io.ImageRecordIter(path_imgrec=f"{out}/train/train.rec", path_imgidx=f"{out}/train/train.idx",
                              shuffle=True, rand_crop=True, pad=2, rand_mirror=True, seed=seed, **kw)
test = mx.io.ImageRecordIter(path_imgrec=f"{out}/test/test.rec", path_imgidx=f"{out}/test/test.idx", **kw)
mod = mx.mod.Module(net, context=mx.cpu())
state = {"train_s": 0.0, "t0": 0.0}
class Reached(Exception):
    pass
def epoch_end(epoch, sym, arg, aux):
    dt = time.perf_counter() - state["t0"]; state["train_s"] += dt
    scores = dict(mod.score(test, ["acc", "ce"]))
    print(json.dumps({"epoch": epoch, "epoch_time": dt, "train_s": state["train_s"], "acc": scores["accuracy"],
                      "loss": scores["cross-entropy"]}), flush=True)
    if stop_at and scores["accuracy"] >= stop_at:
        raise Reached()  # Module.fit has no early stop: leave it from its epoch callback
    state["t0"] = time.perf_counter()
state["t0"] = time.perf_counter()
init = mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2)
try:
    mod.fit(train, num_epoch=epochs, optimizer="sgd", initializer=init,
            optimizer_params={"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-4}, epoch_end_callback=epoch_end,
            batch_end_callback=mx.callback.Speedometer(128, 50))
except Reached:
    pass
"""


def mxnet_run(
    python: str,
    data: tuple[np.ndarray, ...],
    epochs: int,
    seed: int = 0,
    workdir: Path | None = None,
    stop_at: float = 0.0,
) -> dict[str, Any]:
    """MXNet 1.9.1 ``Module.fit`` in its own venv. With ``workdir`` the .rec files packed there are reused (packed
    on the first call): the parity runs give Tailor and every seed the very same files. ``stop_at``: end training
    after the first epoch whose test accuracy reaches it (``epochs`` is then the cap)."""
    import json

    x, y, xt, yt = data
    with tempfile.TemporaryDirectory(prefix="bench-mx-") as tmp:
        out = workdir or Path(tmp)
        np.savez(Path(tmp) / "d.npz", x=x, y=y, xt=xt, yt=yt)
        (Path(tmp) / "run.py").write_text(MXNET_SCRIPT)
        env = {**os.environ, "OMP_NUM_THREADS": str(len(os.sched_getaffinity(0))), "MXNET_CPU_WORKER_NTHREADS": "2"}
        proc = subprocess.Popen(
            [
                python,
                str(Path(tmp) / "run.py"),
                str(Path(tmp) / "d.npz"),
                str(out),
                str(epochs),
                str(seed),
                str(stop_at),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        state: dict[str, Any] = {"t_target": float("nan"), "acc": 0.0, "epoch_time": float("nan"), "train_s": 0.0}
        state["accs"], state["losses"], state["times"] = [], [], []
        assert proc.stdout is not None
        for line in proc.stdout:
            if epochs:
                print(f"  [mxnet] {line.rstrip()}", flush=True)
            if line.startswith("{"):
                rec = json.loads(line)
                if rec["epoch"] == 0:
                    state["epoch_time"] = rec["epoch_time"]
                state["acc"], state["train_s"] = rec["acc"], rec["train_s"]
                state["accs"].append(rec["acc"])
                state["losses"].append(rec["loss"])
                state["times"].append(rec["train_s"])
        if proc.wait() != 0:
            raise RuntimeError(f"MXNet baseline failed with exit status {proc.returncode}")
    state["t_target"] = time_to(state, TARGET)
    return state


def parity(python: str, n_train: int | None, epochs: int, seeds: list[int]) -> None:
    """Tailor vs MXNet ResNet-20 under SageMaker's recipe, trained from the same .rec files (packed by MXNet),
    test accuracy and loss on the 10k test set after every epoch, per seed; then the per-epoch means."""
    from tailor.data.loader import load_channel

    data = load(DATA, n_train)
    print(f"parity: {len(data[0])} training images, {len(data[2])} test, seeds {seeds}, {epochs} epochs", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {"Tailor": [], "MXNet 1.9.1": []}
    with tempfile.TemporaryDirectory(prefix="bench-parity-") as tmp:
        work = Path(tmp)
        mxnet_run(python, data, 0, workdir=work)  # packs train/ and test/ .rec files, trains nothing
        train = load_channel(work / "train", channels=1, size=(28, 28))
        test = load_channel(work / "test", channels=1, size=(28, 28))
        rec_data = (train.images, train.labels, test.images, test.labels)
        for seed in seeds:
            recipe = {**RESNET20_RECIPE, "epochs": str(epochs), "seed": str(seed)}
            runs["Tailor"].append(tailor_run(recipe, rec_data, f"tailor seed {seed}"))
            runs["MXNet 1.9.1"].append(mxnet_run(python, data, epochs, seed, workdir=work))
    print(f"\nResNet-20, {len(data[0])} images, test accuracy % (loss) per epoch; seeds {seeds}")
    for name, rs in runs.items():
        for seed, r in zip(seeds, rs, strict=True):
            cells = " ".join(f"{a * 100:5.1f} ({loss:4.2f})" for a, loss in zip(r["accs"], r["losses"], strict=True))
            print(f"{name:<12} seed {seed}: {cells}")
    for name, rs in runs.items():
        means = np.mean([r["accs"] for r in rs], axis=0) * 100
        print(f"{name:<12} mean  : " + " ".join(f"{m:12.1f}" for m in means))
    la = os.getloadavg()
    print(f"load average at the end: {la[0]:.1f} / {la[1]:.1f} / {la[2]:.1f}")


def _fmt(v: float, width: int = 12) -> str:
    return f"{'-':>{width}}" if v != v else f"{v:>{width}.1f}"  # nan (not reached) prints as '-'


def _time_to_target(r: dict[str, float]) -> tuple[float, str]:
    """Seconds to 91.1 %, or a lower bound (all the training time of a run that never reached it)."""
    if r["t_target"] == r["t_target"]:
        return r["t_target"], ""
    return r["train_s"], ">"


def time_to(r: dict[str, Any], accuracy: float) -> float:
    """Training seconds at the end of the first epoch whose test accuracy reached ``accuracy`` (nan: never)."""
    return next((t for a, t in zip(r["accs"], r["times"], strict=True) if a >= accuracy), float("nan"))


def common_ratio(baseline: dict[str, Any], runs: list[dict[str, Any]]) -> tuple[float, float, float] | None:
    """(accuracy, baseline seconds, best seconds of ``runs``) at the best test accuracy both sides reached: a real
    time-to-accuracy ratio even when neither reached 91.1 %. None when a side has no evaluated epoch."""
    ours = [a for r in runs for a in r["accs"]]
    if not baseline["accs"] or not ours:
        return None
    accuracy = min(max(baseline["accs"]), max(ours))
    ours_s = [t for t in (time_to(r, accuracy) for r in runs) if t == t]  # runs that reached it (nan != nan)
    return accuracy, time_to(baseline, accuracy), min(ours_s)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_train")
    parser.add_argument("--quick", action="store_true", help="subsets and short budgets: validates, not a benchmark")
    parser.add_argument("--budget", type=float, default=300.0, help="Tailor default's time budget (s)")
    parser.add_argument("--target-budget", type=float, default=60.0, help="short budget aimed at 91.1 %% (s)")
    parser.add_argument("--long", action="store_true", help="also run a 900 s budget")
    parser.add_argument("--resnet-epochs", type=int, default=2, help="epochs for both ResNet-20 runs")
    parser.add_argument(
        "--mxnet-epochs",
        type=int,
        default=0,
        help="MXNet trains until 91.1 %% test accuracy or this many epochs (0: --resnet-epochs, no early end)",
    )
    parser.add_argument("--no-mxnet", action="store_true")
    parser.add_argument("--parity", action="store_true", help="only the per-epoch Tailor-vs-MXNet ResNet-20 runs")
    parser.add_argument("--parity-train", type=int, default=3500, help="training images for --parity (0: all)")
    parser.add_argument("--parity-epochs", type=int, default=5)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds for --parity")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    python = os.environ.get("TAILOR_MXNET_PYTHON") or str(
        Path(__file__).resolve().parents[1] / ".venv-mxnet/bin/python"
    )
    if args.parity:
        if not Path(python).exists():
            raise SystemExit(f"--parity needs MXNet 1.9.1: `make mxnet` or TAILOR_MXNET_PYTHON (not found: {python})")
        seeds = [int(s) for s in args.seeds.split(",")]
        parity(python, args.parity_train or None, args.parity_epochs, seeds)
        return
    n_train = 6000 if args.quick else None
    # The one-cycle schedule only anneals at the end of its budget, so time to 91.1 % is measured by a run whose
    # budget is the goal (60 s) as well as read off the longer runs; the smallest figure counts.
    budgets = [10.0, 30.0] if args.quick else [args.target_budget, args.budget] + ([900.0] if args.long else [])
    resnet_epochs = 1 if args.quick else args.resnet_epochs
    data = load(DATA, n_train)
    load_before = os.getloadavg()
    print(
        f"Fashion-MNIST: {len(data[0])} train, {len(data[2])} test; {os.cpu_count()} CPUs; load average "
        f"{load_before[0]:.1f} / {load_before[1]:.1f} / {load_before[2]:.1f} (shared machine: figures are noisy)",
        flush=True,
    )

    rows: list[tuple[str, dict[str, float]]] = []
    for budget in budgets:
        rows.append((f"Tailor default, {budget:g} s budget", tailor_run({"time_budget": str(budget)}, data, "default")))
    recipe = {**RESNET20_RECIPE, "epochs": str(resnet_epochs)}
    rows.append((f"Tailor ResNet-20, {resnet_epochs} ep", tailor_run(recipe, data, "resnet20")))
    if not args.no_mxnet and Path(python).exists():
        mx_epochs = args.mxnet_epochs or resnet_epochs
        mx = mxnet_run(python, data, mx_epochs, stop_at=TARGET if args.mxnet_epochs else 0.0)
        rows.append((f"MXNet 1.9.1 ResNet-20, {len(mx['accs'])} ep", mx))

    print(f"\n{'run':<34} {'epoch-0 s':>10} {'to 91.1 % s':>12} {'train s':>9} {'final acc':>10}")
    for name, r in rows:
        print(
            f"{name:<34} {_fmt(r['epoch_time'], 10)} {_fmt(r['t_target'])} {r['train_s']:>9.1f} {r['acc'] * 100:>9.2f}%"
        )
    defaults = [r for n, r in rows if n.startswith("Tailor default")]
    reached = [r["t_target"] for r in defaults if r["t_target"] == r["t_target"]]
    best = min(reached) if reached else float("nan")
    print(f"Tailor default: time to 91.1 % {_fmt(best, 0).strip()} s (goal <= 60 s)")
    for budget, r in zip(budgets, defaults, strict=True):
        print(f"Tailor default: {r['acc'] * 100:.2f} % at a {budget:g} s budget")
    mx_row = next((r for n, r in rows if n.startswith("MXNet")), None)
    tr = next(r for n, r in rows if n.startswith("Tailor ResNet"))
    if mx_row:
        print(f"ResNet-20 epoch time, MXNet / Tailor: {mx_row['epoch_time'] / tr['epoch_time']:.2f}x (goal >= 2x)")
        mx_t, mx_bound = _time_to_target(mx_row)
        tr_t, tr_bound = _time_to_target(tr)
        if not (mx_bound and tr_bound):
            print(
                f"Time to 91.1 %, MXNet / Tailor ResNet-20: {mx_bound}{mx_t / tr_t:.1f}x"
                + (" (upper)" * bool(tr_bound))
            )
        if reached:
            print(f"Time to 91.1 %, MXNet ResNet-20 / Tailor default: {mx_bound}{mx_t / best:.1f}x (goal >= 10x)")
        common = common_ratio(mx_row, defaults)
        if common:
            acc, t_mx, t_tl = common
            print(
                f"Time to {acc * 100:.2f} % (the best test accuracy both reached), MXNet ResNet-20 {t_mx:.0f} s / "
                f"Tailor default {t_tl:.1f} s: {t_mx / t_tl:.1f}x"
            )
        mx_n = len(mx_row["accs"])
        if mx_bound:
            print(f"  ('>': MXNet did not reach 91.1 % in {mx_n} epochs; its training time is a lower bound)")
            if not args.mxnet_epochs:  # it ran --resnet-epochs only; round six's 6 epochs bound it past 10x
                print("  (--mxnet-epochs N lets MXNet train until 91.1 % or N epochs, for a tighter bound)")
        else:
            first = next(i for i, a in enumerate(mx_row["accs"]) if a >= TARGET) + 1
            print(f"  (MXNet first reached 91.1 % after epoch {first} of {mx_n})")
    load_after = os.getloadavg()
    print(f"load average at the end: {load_after[0]:.1f} / {load_after[1]:.1f} / {load_after[2]:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
