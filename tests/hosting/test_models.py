"""CreateModel: artifacts are downloaded through Storage and unpacked safely, or refused with a clear error."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tailor.core import Tailor
from tailor.errors import ConflictError, NotFoundError, ValidationError
from tailor.settings import Settings
from tailor.storage import Storage


def evil_tar(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> str:
    with tarfile.open(path, "w:gz") as tar:
        ok = b'{"format_version": 1, "image_shape": [1, 28, 28], "num_classes": 10}'
        info = tarfile.TarInfo("model.json")
        info.size = len(ok)
        tar.addfile(info, io.BytesIO(ok))
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return str(path)


def member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, link
    return info


@pytest.mark.parametrize(
    ("info", "data", "message"),
    [
        (member("/etc/evil", size=1), b"x", "absolute path"),
        (member("../evil", size=1), b"x", "escapes"),
        (member("weights.safetensors", tarfile.SYMTYPE, link="/etc/passwd"), b"", "links are not allowed"),
        (member("hard", tarfile.LNKTYPE, link="model.json"), b"", "links are not allowed"),
        (member("dev", tarfile.CHRTYPE), b"", "only regular files"),
        (member("model.onnx", size=4096), b"\0" * 4096, "over the 1024-byte limit"),
    ],
    ids=["absolute", "dotdot", "symlink", "hardlink", "device", "oversize"],
)
def test_unsafe_artifacts_are_refused_and_nothing_is_left(
    settings: Settings, tmp_path: Path, info: tarfile.TarInfo, data: bytes, message: str
) -> None:
    uri = evil_tar(tmp_path / "evil.tar.gz", info, data)
    with Tailor.open(settings) as t:
        t.hosting.max_member_bytes = 1024
        with pytest.raises(ValidationError, match=message):
            t.hosting.create_model(ModelName="evil", PrimaryContainer={"ModelDataUrl": uri})
        with pytest.raises(NotFoundError):
            t.hosting.describe_model("evil")
    assert list(settings.models_dir.iterdir()) == []
    assert not (tmp_path / "evil").exists() and not Path("/etc/evil").exists()


def test_artifact_without_safe_weights_is_refused(settings: Settings, tmp_path: Path) -> None:
    pickle = b"\x80\x04\x95" + b"\0" * 16  # a .pth (pickle) is never loaded
    uri = evil_tar(tmp_path / "pickle.tar.gz", member("model.pth", size=len(pickle)), pickle)
    with Tailor.open(settings) as t, pytest.raises(ValidationError, match="neither model.onnx nor weights.safetensors"):
        t.hosting.create_model(ModelName="pickled", PrimaryContainer={"ModelDataUrl": uri})


def test_model_from_a_bucket_uri_is_described_listed_and_deleted(settings: Settings, model_tar: Path) -> None:
    uri = "s3://models/job-1/output/model.tar.gz"
    Storage(settings).upload_file(model_tar, uri)
    with Tailor.open(settings) as t:
        h = t.hosting
        arn = h.create_model(ModelName="fmnist", PrimaryContainer={"Image": "img:1", "ModelDataUrl": uri})["ModelArn"]
        assert arn == f"arn:aws:sagemaker:{settings.region}:{settings.account_id}:model/fmnist"
        desc = h.describe_model("fmnist")
        assert desc["PrimaryContainer"]["ModelDataUrl"] == uri and desc["CreationTime"].tzinfo is not None
        model_dir = h.model_dir("fmnist")
        assert model_dir.parent == settings.models_dir and (model_dir / "model.onnx").is_file()
        assert model_dir.name != "fmnist"  # server-made id, never the caller's name
        assert [m["ModelName"] for m in h.list_models()["Models"]] == ["fmnist"]
        with pytest.raises(ConflictError):
            h.create_model(ModelName="fmnist", PrimaryContainer={"ModelDataUrl": uri})
        with pytest.raises(ValidationError, match="ModelName"):
            h.create_model(ModelName="bad name", PrimaryContainer={"ModelDataUrl": uri})
        with pytest.raises(NotFoundError):
            h.create_model(ModelName="missing", PrimaryContainer={"ModelDataUrl": "s3://models/none.tar.gz"})
        h.delete_model("fmnist")
        assert not model_dir.exists() and h.list_models()["Models"] == []


def test_endpoint_config_validation(settings: Settings, model_tar: Path) -> None:
    with Tailor.open(settings) as t:
        h = t.hosting
        h.create_model(ModelName="m", PrimaryContainer={"ModelDataUrl": str(model_tar)})
        variant = {"VariantName": "A", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
        for bad, why in (
            ([], "1 to 10"),
            ([dict(variant, VariantName=f"v{i}") for i in range(11)], "1 to 10"),
            ([variant, variant], "unique"),
            ([dict(variant, ModelName="nope")], "Model 'nope' does not exist"),
            ([dict(variant, InitialInstanceCount=0)], "InitialInstanceCount"),
            ([dict(variant, InitialVariantWeight=-1)], "InitialVariantWeight"),
        ):
            with pytest.raises((ValidationError, NotFoundError), match=why):
                h.create_endpoint_config(EndpointConfigName="c", ProductionVariants=bad)
        h.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[variant])
        desc = h.describe_endpoint_config("c")
        assert desc["ProductionVariants"][0]["InitialVariantWeight"] == 1.0
        assert [c["EndpointConfigName"] for c in h.list_endpoint_configs()["EndpointConfigs"]] == ["c"]
        h.delete_endpoint_config("c")
        with pytest.raises(NotFoundError):
            h.describe_endpoint_config("c")
