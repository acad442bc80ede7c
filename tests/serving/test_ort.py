"""The optimised-graph cache: fused graph written once beside the model, same outputs as the unoptimised graph."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tailor.serving import ort as tort
from tailor.serving.loader import load_model


def _images(n: int = 8) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (n, 1, 28, 28)).astype(np.float32)


def _unoptimised(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    opts = tort.session_options(1, level="none")
    sess = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
    return sess.run(["logits"], {"input": x})[0]


@pytest.fixture
def fresh_dir(model_dir: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "model"
    shutil.copytree(model_dir, dest)
    for f in dest.glob("model.onnx.ort-*"):
        f.unlink()
    return dest


def test_cached_graph_is_fused_and_matches_the_unoptimised_graph(fresh_dir: Path) -> None:
    src = fresh_dir / "model.onnx"
    cached = tort.optimized_graph(src)
    assert cached is not None and cached == tort.cache_path(src) and cached.is_file()
    assert ort.__version__ in cached.name
    # Conv+ReLU fused (ResNet-20 is pre-activation: its BNs follow an Add, not a Conv, and stay): fewer nodes.
    before = onnx.load(str(src)).graph.node
    after = onnx.load(str(cached)).graph.node
    assert len(after) < len(before)
    assert any(n.op_type == "FusedConv" for n in after) and not any(n.op_type == "FusedConv" for n in before)
    mtime = cached.stat().st_mtime_ns
    assert tort.optimized_graph(src) == cached and cached.stat().st_mtime_ns == mtime  # written once
    assert [p.name for p in fresh_dir.iterdir() if p.name.startswith(".ort-opt-")] == []  # no temp left
    x = _images()
    got = tort.session(src, 1).run(["logits"], {"input": x})[0]
    np.testing.assert_allclose(got, _unoptimised(src, x), atol=1e-4)
    # load_model (the one loader the worker uses) serves the cached graph with the same probabilities.
    probs = load_model(fresh_dir, runtime="onnx", threads=1).predict(x.astype(np.uint8))
    logits = _unoptimised(src, x.astype(np.uint8).astype(np.float32))
    e = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(1, keepdims=True), atol=1e-4)


def test_a_replaced_model_is_reoptimised(fresh_dir: Path) -> None:
    src = fresh_dir / "model.onnx"
    first = tort.optimized_graph(src)
    m = onnx.load(str(src))
    m.doc_string = "replaced"
    onnx.save(m, str(src))
    second = tort.optimized_graph(src)
    assert first is not None and second is not None and second != first and second.is_file()


def test_an_unwritable_directory_serves_the_export(fresh_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: object, **_k: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tort.tempfile, "mkstemp", refuse)
    assert tort.optimized_graph(fresh_dir / "model.onnx") is None
    x = _images(2)
    got = tort.session(fresh_dir / "model.onnx", 1).run(["logits"], {"input": x})[0]
    np.testing.assert_allclose(got, _unoptimised(fresh_dir / "model.onnx", x), atol=1e-4)
    assert not list(fresh_dir.glob("model.onnx.ort-*"))
