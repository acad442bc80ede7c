"""model.tar.gz unpacking under a budget: a running total of unpacked bytes, model.json checked as soon as it is
met, a refusal that leaves nothing behind, and a default sized from the largest network Tailor trains."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
from pathlib import Path

import pytest

from tailor.artifact import read_model_json, safe_extract
from tailor.core import Tailor
from tailor.errors import NotFoundError, ValidationError
from tailor.settings import DEFAULT_MAX_ARTIFACT_BYTES, Settings

MODEL_JSON = json.dumps({"format_version": 1, "image_shape": [1, 28, 28], "num_classes": 10}).encode()


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def small_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    path.write_bytes(gzip.compress(tar_bytes(members)))
    return path


def zero_bomb(path: Path, size: int = 2 * 1024**3, meta: bytes = MODEL_JSON) -> Path:
    """A valid model.tar.gz: model.json then one member of ``size`` zero bytes, ~1 KB per compressed MiB.

    Written as a multi-member gzip stream (RFC 1952 allows any number; tarfile and gzip -d read them as one):
    the zero data is one gzip member of 1 MiB repeated, so the file is built in well under a second without
    compressing (or check-summing) 2 GiB."""
    mib = 1 << 20
    assert size % mib == 0
    meta_info, big = tarfile.TarInfo("model.json"), tarfile.TarInfo("weights.safetensors")
    meta_info.size, big.size = len(meta), size
    padding = bytes(-len(meta) % 512)
    head = meta_info.tobuf(tarfile.GNU_FORMAT) + meta + padding + big.tobuf(tarfile.GNU_FORMAT)
    tail = bytes(2 * 512)  # end-of-archive (the zero member is already block-aligned)
    zero = gzip.compress(bytes(mib), compresslevel=9, mtime=0)
    with path.open("wb") as out:
        out.write(gzip.compress(head, mtime=0))
        for _ in range(size // mib):
            out.write(zero)
        out.write(gzip.compress(tail, mtime=0))
    return path


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


def test_running_total_refuses_many_small_members_and_leaves_nothing(tmp_path: Path) -> None:
    """Each member is under the per-member cap; together they pass the total: refused, nothing written."""
    tar = small_tar(
        tmp_path / "m.tar.gz", [("model.json", MODEL_JSON)] + [(f"part{i}", bytes(40_000)) for i in range(5)]
    )
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValidationError, match=r"'part2' takes the unpacked size past the 100000-byte limit"):
        safe_extract(tar, out / "model", max_member_bytes=50_000, max_total_bytes=100_000)
    assert leftovers(out) == []  # no dest, no half-written staging directory
    names = [p.name for p in safe_extract(tar, out / "model", max_total_bytes=300_000)]
    assert names == ["model.json"] + [f"part{i}" for i in range(5)] and leftovers(out) == ["model"]


def test_model_json_is_checked_before_the_rest_is_read(tmp_path: Path) -> None:
    bad = json.dumps({"format_version": 99}).encode()
    tar = zero_bomb(tmp_path / "old.tar.gz", meta=bad)
    t0 = time.monotonic()
    with pytest.raises(ValidationError, match="format_version 99 is not 1"):
        safe_extract(tar, tmp_path / "out", source="s3://models/old/model.tar.gz")
    with pytest.raises(ValidationError, match="format_version 99"):
        read_model_json(tar)
    assert time.monotonic() - t0 < 2.0 and not (tmp_path / "out").exists()


def test_default_limit_refuses_a_real_2_gib_member_at_its_header(tmp_path: Path) -> None:
    tar = zero_bomb(tmp_path / "bomb.tar.gz")
    assert tar.stat().st_size < 4 * 1024**2
    out = tmp_path / "out"
    out.mkdir()
    t0 = time.monotonic()
    with pytest.raises(ValidationError, match="past the 1100000000-byte limit") as err:
        safe_extract(tar, out / "model", source="s3://models/bomb/model.tar.gz")
    assert time.monotonic() - t0 < 2.0  # extracting 2 GiB takes tens of seconds on this VM
    assert str(err.value).startswith("s3://models/bomb/model.tar.gz: ") and str(tmp_path) not in str(err.value)
    assert leftovers(out) == []


def test_create_model_refuses_the_bomb_by_uri_with_nothing_left(settings: Settings, tmp_path: Path) -> None:
    tar = zero_bomb(tmp_path / "bomb.tar.gz", size=64 * 1024**2)
    small = settings.model_copy(update={"max_artifact_bytes": 1024 * 1024})  # the setting, made small
    with Tailor.open(small) as t:
        with pytest.raises(ValidationError, match="max_artifact_bytes") as err:
            t.hosting.create_model(ModelName="bomb", PrimaryContainer={"ModelDataUrl": str(tar)})
        with pytest.raises(NotFoundError):
            t.hosting.describe_model("bomb")
    assert str(settings.home) not in str(err.value) and str(tar) in str(err.value)
    assert list(settings.models_dir.iterdir()) == []
    assert [p for p in settings.cache_dir.rglob("*") if p.is_file()] == []


@pytest.mark.slow
def test_default_limit_is_twice_the_largest_networks_artifact() -> None:
    """Recount the parameters of every registered network at 1,000 classes (on the meta device: no memory),
    take the largest artifact (float32 weights in safetensors + the same again in model.onnx) and check the
    default allows it twice over, and not much more."""
    import torch

    from tailor.algorithms.image_classification.networks import create_model, list_models

    sizes = {}
    with torch.device("meta"):
        for name in list_models():
            model = create_model(name, num_classes=1000, in_channels=3, image_size=224)
            sizes[name] = 2 * sum(t.numel() * t.element_size() for t in model.state_dict().values())
    largest = max(sizes, key=sizes.__getitem__)
    assert largest == "resnet200"
    assert 2 * sizes[largest] <= DEFAULT_MAX_ARTIFACT_BYTES <= 2.2 * sizes[largest]
