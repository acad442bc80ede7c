"""INT8 serving chosen per model (Environment ``TAILOR_QUANTIZE=int8``): the endpoint answers from an INT8 graph
calibrated on the artifact's sample, close to the FP32 model; bad values and artifacts without a sample are
refused at CreateModel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tailor.core import Tailor
from tailor.errors import ValidationError
from tailor.serving.loader import load_model
from tailor.serving.preprocess import decode_image
from tailor.settings import Settings
from tests.serving.artifacts import IMAGE_SHAPE, build_artifact, png_bytes

pytestmark = pytest.mark.slow  # a model-worker process


def test_int8_endpoint_answers_close_to_fp32(settings: Settings, tmp_path: Path, model_tar: Path) -> None:
    tar = build_artifact(tmp_path / "model.tar.gz", calibration=True)
    plain = model_tar  # no calibration sample, as from an older Tailor
    with Tailor.open(settings) as t:
        h = t.hosting
        with pytest.raises(ValidationError, match="TAILOR_QUANTIZE must be fp32 or int8"):
            h.create_model(
                ModelName="bad",
                PrimaryContainer={"ModelDataUrl": str(tar), "Environment": {"TAILOR_QUANTIZE": "int4"}},
            )
        with pytest.raises(ValidationError, match="calibration.npy"):
            h.create_model(
                ModelName="old",
                PrimaryContainer={"ModelDataUrl": str(plain), "Environment": {"TAILOR_QUANTIZE": "int8"}},
            )
        h.create_model(
            ModelName="q", PrimaryContainer={"ModelDataUrl": str(tar), "Environment": {"TAILOR_QUANTIZE": "int8"}}
        )
        h.create_endpoint_config(EndpointConfigName="q", ProductionVariants=[{"VariantName": "v", "ModelName": "q"}])
        h.create_endpoint(EndpointName="q", EndpointConfigName="q")
        desc = h.wait_endpoint("q", timeout=180)
        assert desc["EndpointStatus"] == "InService", desc.get("FailureReason")
        bodies = [png_bytes(i) for i in range(24)]
        got = np.array([json.loads(h.invoke("q", b, "image/png").reply.body) for b in bodies])
        model_dir = h.model_dir("q")
        assert list(model_dir.glob("model.onnx.int8-*.onnx"))  # the worker served the INT8 graph
        h.delete_endpoint("q")
    images = np.stack([decode_image(b, IMAGE_SHAPE) for b in bodies])
    fp32 = load_model(tar, runtime="onnx").predict(images)
    assert got.shape == fp32.shape == (24, 10) and not np.allclose(got, fp32, atol=1e-6)  # not the fp32 graph
    assert np.abs(got - fp32).max() < 0.05
    assert (got.argmax(1) == fp32.argmax(1)).mean() >= 0.9
