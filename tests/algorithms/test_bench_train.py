"""`python -m bench train`'s MXNet baseline: it trains to a test accuracy or to its epoch cap, and says which."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import bench_train

pytestmark = pytest.mark.slow  # runs MXNet 1.9.1 in its own venv


@pytest.mark.timeout(240)
def test_mxnet_baseline_ends_at_the_target_or_runs_its_cap(mxnet_python: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, xt = rng.integers(0, 256, (384, 1, 28, 28), np.uint8), rng.integers(0, 256, (128, 1, 28, 28), np.uint8)
    data = (x, rng.integers(0, 10, 384).astype(np.float32), xt, rng.integers(0, 10, 128).astype(np.float32))
    capped = bench_train.mxnet_run(mxnet_python, data, 2, workdir=tmp_path)  # no target: every epoch of the cap
    assert len(capped["accs"]) == len(capped["losses"]) == 2 and capped["train_s"] > 0
    # A target every epoch reaches (random labels sit near 10 %, never at 0): training ends after the first.
    early = bench_train.mxnet_run(mxnet_python, data, 3, workdir=tmp_path, stop_at=1e-9)  # .rec packed above
    assert len(early["accs"]) == 1 and early["train_s"] == pytest.approx(early["epoch_time"])
