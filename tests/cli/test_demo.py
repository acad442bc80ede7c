"""`tailor demo` (what `make demo` runs) end to end on a small Fashion-MNIST slice, as a real subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the whole demo


def test_demo_runs_every_step_on_a_slice(tmp_path: Path, dataset_mirror: str) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "TAILOR_HOME": str(home), "TAILOR_DATASET_MIRROR": dataset_mirror}
    out = subprocess.run(
        [sys.executable, "-m", "tailor.cli.main", "demo", "--limit", "1000", "--time-budget", "15"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    for step in ("1/6", "2/6", "3/6", "4/6", "5/6", "6/6"):
        assert f"== {step}" in text
    assert "$ tailor data im2rec --list --recursive --train-ratio 0.7 fmnist images/train" in text
    assert "skipped" not in text + out.stderr, "every listed image packs"
    accuracy = float(re.search(r"test accuracy: (0\.\d+) \((\d+)/1000\)", text).group(1))
    assert accuracy > 0.25  # chance is 0.1; 15 s (~45 SGD steps) on 700 images is far from the full demo's 0.92
    # Seed-style answers with class folder names, one per test image of each of the 10 classes.
    names = "AnkleBoot|Bag|Coat|Dress|Pullover|Sandal|Shirt|Sneaker|TShirtTop|Trouser"
    assert len(re.findall(rf"^({names}) \(0\.\d{{6}}\)$", text, flags=re.M)) == 10
    assert re.search(r"AllTraffic\s+10\s+0\s+0", text), "endpoint metrics count the 10 invocations"
    assert ": deleted" in text
    run = re.search(r"Tailor demo (fmnist-demo-\S+):", text).group(1)
    assert (home / "demo" / run / "curves.png").stat().st_size > 0
    # The server the demo started is gone, and so are its endpoint workers.
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(home) not in ps
