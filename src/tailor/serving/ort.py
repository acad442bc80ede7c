"""ONNX Runtime sessions for serving: the worker's session options and the optimised-graph cache.

ONNX Runtime rewrites a graph before it runs it (constant folding, Conv+BatchNorm folding, Conv+ReLU / Conv+Add
fusions, NCHWc layout on x86). By default every worker redoes that work at start. ``session`` does it once per
model file and ONNX Runtime version: the extended-level graph (portable across CPUs of the same runtime version;
the layout rewrite of ORT_ENABLE_ALL is machine-specific, so it is applied at load, not saved) is written beside
the model as ``model.onnx.ort-<version>-<sha256 prefix>.onnx`` (atomically: workers of one endpoint start
together), and later workers load that fused graph. A directory that cannot be written just skips the cache.

Measured (``python -m bench serving``, ResNet-20 1x28x28 exported by Tailor, one ONNX Runtime thread, three
runs on the 2-core VM at load average 2.5-7 and 13-17 from other jobs): the cached graph has 55 nodes against the
export's 78 (Conv+ReLU fused; the pre-activation BNs stay), the same outputs within 1e-4 (a test checks); a
session starts in 9 / 90 / 139 ms from it against 26 / 214 / 245 ms from the export (2.9x / 2.4x / 1.8x);
batch-64 throughput equals the optimised-at-load graph's (the runtime's default level was already
ORT_ENABLE_ALL) and is 3.7x / 2.5x / 1.7x the unoptimised (ORT_DISABLE_ALL) graph's: 1,086 vs 293 img/s at
load ~2.5, 121 vs 48 and 111 vs 64 img/s under load 13-17.
INT8 (``python -m bench quantize``): on a quiet machine 1.12x batch-64 throughput and 1.05x batch-1 p50 of the
fp32 graph (AVX2, no VNNI: no fast int8 dot product here); 2.07x / 1.61x in an earlier run at load ~16 was the
load's doing. Accuracy on the 10,000 Fashion-MNIST test images 75.22 % vs 74.70 % (one-epoch ResNet-20).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

CACHE_SUFFIX = ".onnx"


def session_options(threads: int, *, level: str = "all", optimized_path: Path | None = None) -> Any:
    """The worker's options: ``threads`` intra-op threads, one inter-op thread, no spin-waiting."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # One session per process serves batches; all cores for one op, one inter-op thread (a single chain).
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    # No spin-waiting between ops: spinning threads burn the cores the event loops (this worker's, the Tailor
    # server's) need. Measured ~1.8x faster batch-16 inference on the shared 2-core VM with spinning off.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.graph_optimization_level = {
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    if optimized_path is not None:
        opts.optimized_model_filepath = str(optimized_path)
    return opts


def cache_path(onnx_path: Path) -> Path:
    """Where the optimised graph of ``onnx_path`` lives: named by this ONNX Runtime version and the source's
    SHA-256, so a replaced ``model.onnx`` or an upgraded runtime is re-optimised, never served stale."""
    import onnxruntime as ort

    return onnx_path.with_name(f"{onnx_path.name}.ort-{ort.__version__}-{_digest(onnx_path)[:16]}{CACHE_SUFFIX}")


def optimized_graph(onnx_path: Path) -> Path | None:
    """The cached extended-level graph of ``onnx_path`` (written now if missing); None if it cannot be written."""
    import onnxruntime as ort

    target = cache_path(onnx_path)
    if target.is_file():
        return target
    try:
        fd, tmp = tempfile.mkstemp(prefix=".ort-opt-", suffix=CACHE_SUFFIX, dir=onnx_path.parent)
    except OSError:
        return None
    os.close(fd)
    try:
        opts = session_options(1, level="extended", optimized_path=Path(tmp))
        ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
        os.replace(tmp, target)  # whole or absent: workers of one endpoint start together
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return None
    return target


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


QUANTIZE_CHOICES = ("fp32", "int8")
CALIBRATION_IMAGES = 256  # what static quantisation reads to set activation ranges; ~0.2 MB of 28x28 greys


def quantized_graph(onnx_path: Path, calibration: Any) -> Path:
    """An INT8 graph of ``onnx_path`` (static QDQ quantisation, per-channel int8 weights, uint8 activations
    with ranges from ``calibration``, uint8 (N, C, H, W) images), cached beside it like the optimised graph.

    ``reduce_range``: 7-bit weights, as ONNX Runtime advises for u8s8 on x86 CPUs without VNNI (AVX2 only, as on
    this VM), where 8-bit products can saturate the 16-bit intermediate sums of the int8 kernels."""
    import numpy as np
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    target = onnx_path.with_name(f"{onnx_path.name}.int8-{ort.__version__}-{_digest(onnx_path)[:16]}{CACHE_SUFFIX}")
    if target.is_file():
        return target
    images = np.asarray(calibration, dtype=np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": images[i : i + 32]} for i in range(0, len(images), 32)])

        def get_next(self) -> dict[str, Any] | None:
            return next(self.batches, None)

    fd, tmp = tempfile.mkstemp(prefix=".ort-int8-", suffix=CACHE_SUFFIX, dir=onnx_path.parent)
    os.close(fd)
    try:
        with tempfile.TemporaryDirectory(prefix="tailor-quantize-") as work:
            # Quantise the basic-level graph: BN folded into the Conv before it (one weight to quantise), but
            # no FusedConv, a CPU-only operator the quantiser does not know.
            opt = Path(work) / "model.onnx"
            ort.InferenceSession(
                str(onnx_path),
                sess_options=session_options(1, level="basic", optimized_path=opt),
                providers=["CPUExecutionProvider"],
            )
            # The quantiser logs advice (pre-processing, per-axis notes) on the root logger as WARNING: not the
            # worker log's business; real failures still raise.
            logging.disable(logging.WARNING)
            try:
                _quantize(quantize_static, opt, tmp, Reader(), QuantFormat, QuantType)
            finally:
                logging.disable(logging.NOTSET)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return target


def _quantize(quantize_static: Any, src: Path, dst: str, reader: Any, fmt: Any, qtype: Any) -> None:
    quantize_static(
        str(src),
        dst,
        reader,
        quant_format=fmt.QDQ,
        per_channel=True,
        reduce_range=True,
        op_types_to_quantize=["Conv", "Gemm"],  # the layers with weights; BN/Add stay float
        activation_type=qtype.QUInt8,
        weight_type=qtype.QInt8,
    )


def session(onnx_path: Path, threads: int, *, use_cache: bool = True, calibration: Any = None) -> Any:
    """An inference session for ``onnx_path`` on the CPU, from the cached optimised graph when possible; with
    ``calibration`` images, from its INT8 graph (:func:`quantized_graph`)."""
    import onnxruntime as ort

    if calibration is not None:
        source = quantized_graph(onnx_path, calibration)
    else:
        source = (optimized_graph(onnx_path) if use_cache else None) or onnx_path
    opts = session_options(threads)
    return ort.InferenceSession(str(source), sess_options=opts, providers=["CPUExecutionProvider"])
