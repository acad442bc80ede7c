"""A tiny training command that follows Tailor's job-dir contract, so job tests take seconds.

Hyperparameters (strings, from input/config/hyperparameters.json):
  epochs (default 3), sleep (seconds per epoch, default 0.05), fail ("1": write output/failure, exit 1;
  other text: write that text as the failure),
  crash ("1": exit 3 without output/failure), no_model ("1": exit 0 without a model), ignore_term ("1"),
  scale (default 1: multiplies the accuracies, so a tuning job's trials differ by a hyperparameter).
On SIGTERM it writes checkpoints/last.txt and exits 143 (unless ignore_term).
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import tarfile
import time
from pathlib import Path

job = Path(os.environ.get("TAILOR_JOB_DIR") or sys.argv[sys.argv.index("--job-dir") + 1])
hp = json.loads((job / "input/config/hyperparameters.json").read_text())
epoch = 0


def on_term(signum: int, frame: object) -> None:
    (job / "checkpoints").mkdir(exist_ok=True)
    (job / "checkpoints" / "last.txt").write_text(f"epoch {epoch}\n")
    print(f"SIGTERM at epoch {epoch}: checkpoint saved", flush=True)
    sys.exit(143)


signal.signal(signal.SIGTERM, signal.SIG_IGN if hp.get("ignore_term") == "1" else on_term)
print(f"pid={os.getpid()} channels={sorted(os.listdir(job / 'input/data'))}", flush=True)
train_files = sorted(p.name for p in (job / "input/data/train").rglob("*") if p.is_file())
print(f"train files: {train_files}", flush=True)
for epoch in range(int(hp.get("epochs", "3"))):
    time.sleep(float(hp.get("sleep", "0.05")))
    acc = (0.5 + 0.1 * epoch) * float(hp.get("scale", "1"))
    print(f"Epoch[{epoch}] Train-accuracy={acc:.6f}", flush=True)
    print(f"Epoch[{epoch}] Validation-accuracy={acc - 0.05:.6f}", flush=True)
    print(f"Epoch[{epoch}] Train-loss={1.0 / (epoch + 1):.4f}", flush=True)
    print(f"Epoch[{epoch}] Time cost=0.05", flush=True)
if hp.get("fail"):
    told = "ValueError: the fake algorithm was told to fail" if hp["fail"] == "1" else hp["fail"]
    (job / "output" / "failure").write_text(told)
    sys.exit(1)
if hp.get("crash") == "1":
    print("Traceback: something broke", file=sys.stderr, flush=True)
    sys.exit(3)
if hp.get("no_model") != "1":
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = json.dumps({"epochs": epoch + 1}).encode()
        info = tarfile.TarInfo("model.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (job / "model" / "model.tar.gz").write_bytes(buf.getvalue())
print("done", flush=True)
