"""`python -m bench train_gpu`: a clear refusal without CUDA, and its code path on the CPU (``--cpu-smoke``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench import bench_train_gpu

pytestmark = pytest.mark.slow  # a benchmark run


@pytest.mark.timeout(120)
def test_gpu_bench_refuses_without_cuda_and_runs_its_path_on_cpu(
    dataset_mirror: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = Path(dataset_mirror.removeprefix("file://")) / "fashion-mnist"
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="needs a CUDA GPU"):
            bench_train_gpu.main(["--data", str(data)])
    bench_train_gpu.main(["--cpu-smoke", "--budget", "3", "--data", str(data)])
    out = capsys.readouterr().out
    assert "Network fastnet_wide" in out and "Validation-accuracy=" in out
    accuracy = float(out.split("test accuracy after ")[1].split(": ")[1].split(" %")[0])
    assert 0 <= accuracy <= 100 and "time to 91.1 %" in out
