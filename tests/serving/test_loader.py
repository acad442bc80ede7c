"""load_model: the artifact round trip (safetensors and ONNX agree with torch) and unsafe tarballs rejected."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tailor.algorithms.image_classification.export import write_model
from tailor.algorithms.image_classification.hyperparameters import parse_hyperparameters
from tailor.algorithms.image_classification.networks import create_model, inference_model
from tailor.artifact import read_model_json, safe_extract
from tailor.errors import ValidationError
from tailor.serving.loader import load_model


def _trained_like(name: str, channels: int) -> torch.nn.Module:
    """A network with non-trivial BN statistics, as after training."""
    torch.manual_seed(0)
    model = create_model(
        name, num_classes=5, in_channels=channels, image_size=28, mean=[60.0] * channels, std=[40.0] * channels
    )
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randint(0, 256, (16, channels, 28, 28)).float())
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize(("name", "channels", "tta", "multi"), [("fastnet", 1, "1", "0"), ("resnet20", 3, "0", "1")])
def test_round_trip_onnx_and_torch_match(tmp_path: Path, name: str, channels: int, tta: str, multi: str) -> None:
    hp = parse_hyperparameters(
        {
            "num_classes": "5",
            "num_training_samples": "10",
            "image_shape": f"{channels},28,28",
            "tta": tta,
            "multi_label": multi,
            "architecture": "fast" if name == "fastnet" else "resnet",
            "num_layers": "20",
        }
    )
    model = _trained_like(name, channels)
    kwargs = {
        "num_classes": 5,
        "in_channels": channels,
        "image_size": 28,
        "mean": [60.0] * channels,
        "std": [40.0] * channels,
    }
    tar = write_model(
        tmp_path / "model.tar.gz",
        model,
        hp=hp,
        model_name=name,
        model_kwargs=kwargs,
        class_names=list("abcde"),
        metrics={"validation:accuracy": 0.5},
    )
    meta = read_model_json(tar)
    assert meta["model"]["name"] == name and meta["image_shape"] == [channels, 28, 28] and meta["format_version"] == 1
    assert meta["hyperparameters"]["num_classes"] == "5" and "torch" in meta["versions"]
    images = np.random.default_rng(0).integers(0, 256, (6, channels, 28, 28), dtype=np.uint8)
    with torch.inference_mode():
        logits = inference_model(model, tta == "1")(torch.from_numpy(images).float())
    expected = torch.sigmoid(logits) if multi == "1" else torch.softmax(logits, 1)
    onnx_model = load_model(tar, runtime="onnx")
    torch_model = load_model(tar, runtime="torch")
    assert load_model(tar).runtime == "onnx"  # auto on CPU
    assert onnx_model.meta.class_names == list("abcde") and onnx_model.meta.multi_label == (multi == "1")
    for loaded in (onnx_model, torch_model):
        probs = loaded.predict(images)
        assert probs.dtype == np.float32 and probs.shape == (6, 5)
        np.testing.assert_allclose(probs, expected.numpy(), atol=1e-4)
    with pytest.raises(ValidationError, match="shape"):
        onnx_model.predict(images[:, :, :20])


def _tar_with(tmp_path: Path, add) -> Path:  # noqa: ANN001
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        data = json.dumps({"format_version": 1}).encode()
        info = tarfile.TarInfo("model.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        add(tar)
    return path


def _file(name: str, size: int = 3):  # noqa: ANN202
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        tar.addfile(info, io.BytesIO(b"x" * size))

    return add


def _special(name: str, kind: bytes, linkname: str = ""):  # noqa: ANN202
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, linkname
        tar.addfile(info)

    return add


@pytest.mark.parametrize(
    ("add", "member", "why"),
    [
        (_file("/etc/evil"), "/etc/evil", "absolute"),
        (_file("../evil"), "../evil", "escapes"),
        (_file("a/../../evil"), "a/../../evil", "escapes"),
        (_special("link", tarfile.SYMTYPE, "/etc/passwd"), "link", "links"),
        (_special("hard", tarfile.LNKTYPE, "model.json"), "hard", "links"),
        (_special("dev", tarfile.CHRTYPE), "dev", "regular files"),
        (_special("fifo", tarfile.FIFOTYPE), "fifo", "regular files"),
        (_file("big.bin", 2048), "big.bin", "limit"),
    ],
)
def test_unsafe_tarballs_rejected(tmp_path: Path, add, member: str, why: str) -> None:  # noqa: ANN001
    tar = _tar_with(tmp_path, add)
    dest = tmp_path / "out"
    with pytest.raises(ValidationError, match=why) as err:
        safe_extract(tar, dest, max_member_bytes=1024)
    assert repr(member) in str(err.value)
    assert not dest.exists()  # checked before anything is written
    if why != "limit":
        with pytest.raises(ValidationError):
            load_model(tar)


def test_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(ValidationError, match="tar"):
        load_model(tmp_path / "junk.tar.gz")
    with pytest.raises(ValidationError, match="no such"):
        load_model(tmp_path / "missing")
