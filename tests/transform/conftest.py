"""A Tailor home with a model (the serving tests' seeded ResNet-20 artifact) and images in a local bucket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tailor.client import Client
from tailor.settings import Settings
from tests.serving.artifacts import CLASS_NAMES, build_artifact, png_bytes

MODEL = "rn20"
# Class folders may not hold "/": the artifact's "T-shirt/top" is never a folder here.
FOLDERS = ("Trouser", "Sneaker", "Bag")


def put_images(settings: Settings, prefix: str, per_class: int, seed: int = 0) -> list[str]:
    """PNG files ``s3://data/<prefix>/<class>/<n>.png`` in the local bucket; their relative keys."""
    root = settings.buckets_dir / "data" / prefix
    keys = []
    for c, name in enumerate(FOLDERS):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (root / name / f"{i:04d}.png").write_bytes(png_bytes(seed + 1000 * c + i))
            keys.append(f"{name}/{i:04d}.png")
    return keys


def create_model(client: Client, settings: Settings, tar: Path) -> None:
    dest = settings.buckets_dir / "models" / "rn20.tar.gz"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(tar.read_bytes())
    client.create_model(ModelName=MODEL, PrimaryContainer={"ModelDataUrl": "s3://models/rn20.tar.gz"})


def request(name: str, inputs: str, output: str, **extra: object) -> dict:
    spec = {
        "TransformJobName": name,
        "ModelName": MODEL,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": inputs}},
            "ContentType": "application/x-image",
        },
        "TransformOutput": {"S3OutputPath": output, "Accept": "application/jsonlines"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    spec.update(extra)
    return spec


def recordio_request(name: str, inputs: str, output: str, **extra: object) -> dict:
    """A transform of the .rec files under ``inputs``, split into their records."""
    recordio = {"ContentType": "application/x-recordio", "SplitType": "RecordIO"}
    spec = request(name, inputs, output, **extra)
    spec["TransformInput"].update(recordio)
    return spec


@pytest.fixture
def client(settings: Settings, model_tar: Path) -> Iterator[Client]:  # noqa: F811
    with Client(settings=settings) as c:
        create_model(c, settings, model_tar)
        yield c


__all__ = ["CLASS_NAMES", "FOLDERS", "MODEL", "build_artifact", "create_model", "put_images", "request"]
