"""Models (CreateModel, DescribeModel, ListModels, DeleteModel): a name for an unpacked model.tar.gz.

CreateModel downloads ``PrimaryContainer.ModelDataUrl`` through Storage and unpacks it with the artifact's
``safe_extract`` (no absolute paths, ``..``, links, devices or oversize members) into
``models_dir/<server-made id>/``; model.json is validated and weights are safetensors/ONNX only.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select

from tailor.artifact import CALIBRATION, ONNX, WEIGHTS, read_model_json, safe_extract
from tailor.db import Database, utcnow
from tailor.errors import ConflictError, TailorError, ValidationError
from tailor.hosting.store import ModelRow, WorkerRow
from tailor.resources import arn, check_name, fetch, list_request, paginate
from tailor.settings import Settings
from tailor.storage import Storage

DEFAULT_IMAGE = "tailor/image-classification"


_UNPACKING = threading.Lock()  # one unpack of a model made elsewhere at a time (two deploys of it race)


@dataclass(eq=False)
class Models:
    settings: Settings
    db: Database
    storage: Storage
    max_member_bytes: int | None = None  # per-file cap when unpacking artifacts (None: the artifact default)

    def create(self, spec: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        spec = {**(spec or {}), **kwargs}
        name = check_name("ModelName", spec.get("ModelName"))
        container = _container(spec)
        self._refuse_existing(name)
        model_id = uuid.uuid4().hex
        dest = self.settings.models_dir / model_id
        meta = self._unpack(container["ModelDataUrl"], dest)
        if quantize_of(container) == "int8" and not ((dest / ONNX).is_file() and (dest / CALIBRATION).is_file()):
            shutil.rmtree(dest, ignore_errors=True)
            raise ValidationError(
                f"Environment {QUANTIZE_ENV}=int8: the artifact needs {ONNX} and {CALIBRATION} (training images "
                "for calibration), which models trained by older Tailor versions lack"
            )
        row = ModelRow(
            name=name,
            arn=arn(self.settings.region, self.settings.account_id, "model", name),
            model_id=model_id,
            spec={
                "PrimaryContainer": container,
                "ExecutionRoleArn": spec.get("ExecutionRoleArn"),
                "Tags": spec.get("Tags") or [],
            },
            model_json=meta,
            creation_time=utcnow(),
        )
        try:
            with self.db.session() as s:
                if s.get(ModelRow, name) is not None:
                    raise _exists(name)
                s.add(row)
        except TailorError:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        return {"ModelArn": row.arn}

    def _refuse_existing(self, name: str) -> None:
        with self.db.session() as s:
            if s.get(ModelRow, name) is not None:
                raise _exists(name)

    def _unpack(self, uri: str, dest: Path) -> dict[str, Any]:
        """Download and safely unpack an artifact; returns the parts of model.json serving needs."""
        limit = self.settings.max_artifact_bytes
        if self.storage.size(uri) > limit:  # compressed bytes never outnumber unpacked ones by much
            raise ValidationError(f"{uri}: the archive is larger than the {limit}-byte limit (max_artifact_bytes)")
        self.settings.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.settings.cache_dir, prefix="model-") as tmp:
            tar = Path(tmp) / "model.tar.gz"
            self.storage.download_file(uri, tar)
            try:
                member_cap = {} if self.max_member_bytes is None else {"max_member_bytes": self.max_member_bytes}
                # Messages name the caller's URI, never the cache or model directories.
                safe_extract(tar, dest, max_total_bytes=limit, source=uri, **member_cap)
                meta = _check_model_dir(uri, dest)
            except TailorError:
                shutil.rmtree(dest, ignore_errors=True)
                raise
        return {
            "image_shape": meta["image_shape"],
            "num_classes": meta["num_classes"],
            "class_names": meta.get("class_names"),
            "multi_label": bool(meta.get("multi_label")),
            "algorithm": meta.get("algorithm"),
        }

    def get(self, name: str) -> ModelRow:
        return fetch(self.db, ModelRow, name, "Model")

    def quantize(self, name: str) -> str:
        """The serving precision the model's Environment asks for (``TAILOR_QUANTIZE``): fp32 or int8."""
        return quantize_of(self.get(name).spec["PrimaryContainer"])

    def directory(self, name: str) -> Path:
        """The model's unpacked files in this server's home. Servers sharing one database each keep their own
        copy: one that deploys a model another server created unpacks it here first, from its ModelDataUrl."""
        row = self.get(name)
        dest = self.settings.models_dir / row.model_id
        if not dest.is_dir():
            with _UNPACKING:
                if not dest.is_dir():
                    tmp = dest.with_name(dest.name + ".partial")
                    shutil.rmtree(tmp, ignore_errors=True)
                    self._unpack(row.spec["PrimaryContainer"]["ModelDataUrl"], tmp)
                    tmp.rename(dest)
        return dest

    def resolve(self, name: str) -> tuple[Path, list[str]]:
        """The unpacked model directory and its class names (index order; the index as text when unnamed)."""
        row = self.get(name)
        names = row.model_json.get("class_names") or [str(i) for i in range(int(row.model_json["num_classes"]))]
        return self.settings.models_dir / row.model_id, [str(n) for n in names]

    def images(self, names: list[str]) -> dict[str, str]:
        """The container image recorded for each of these models."""
        with self.db.session() as s:
            rows = s.scalars(select(ModelRow).where(ModelRow.name.in_(names)))
            return {r.name: r.spec["PrimaryContainer"]["Image"] for r in rows}

    def describe(self, name: str) -> dict[str, Any]:
        row = self.get(name)
        out = {
            "ModelName": row.name,
            "PrimaryContainer": row.spec["PrimaryContainer"],
            "CreationTime": row.creation_time,
            "ModelArn": row.arn,
        }
        if row.spec.get("ExecutionRoleArn"):
            out["ExecutionRoleArn"] = row.spec["ExecutionRoleArn"]
        return out

    def list(self, filters: dict[str, Any] | None = None, /, **kwargs: Any) -> dict[str, Any]:
        """Filters as a request dict (the SageMaker protocol) and/or keywords."""
        rows, token = paginate(self.db, ModelRow, list_request(filters, kwargs))
        out: dict[str, Any] = {
            "Models": [{"ModelName": r.name, "ModelArn": r.arn, "CreationTime": r.creation_time} for r in rows]
        }
        if token:
            out["NextToken"] = token
        return out

    def delete(self, name: str) -> dict[str, Any]:
        row = self.get(name)
        with self.db.session() as s:
            s.execute(delete(ModelRow).where(ModelRow.name == name))
            in_use = s.scalar(select(func.count()).select_from(WorkerRow).where(WorkerRow.model_name == name))
        if not in_use:  # running workers keep their files until their endpoint moves on
            shutil.rmtree(self.settings.models_dir / row.model_id, ignore_errors=True)
        return {}


# The model's Environment entry that picks the serving precision (boto3 sends Environment as is): "fp32" (the
# default) or "int8", an INT8 graph calibrated on the artifact's calibration sample (tailor.serving.ort).
QUANTIZE_ENV = "TAILOR_QUANTIZE"


def quantize_of(container: dict[str, Any]) -> str:
    return str((container.get("Environment") or {}).get(QUANTIZE_ENV) or "fp32").lower()


def _container(spec: dict[str, Any]) -> dict[str, Any]:
    """PrimaryContainer (or the one entry of Containers), validated and normalised."""
    container = spec.get("PrimaryContainer")
    if container is None and spec.get("Containers"):
        if len(spec["Containers"]) != 1:
            raise ValidationError("Containers: Tailor serves one container per model; pass PrimaryContainer")
        container = spec["Containers"][0]
    if not isinstance(container, dict) or not container.get("ModelDataUrl"):
        raise ValidationError("PrimaryContainer.ModelDataUrl is required: the URI of a model.tar.gz")
    if quantize_of(container) not in ("fp32", "int8"):
        raise ValidationError(f"Environment {QUANTIZE_ENV} must be fp32 or int8, got {quantize_of(container)!r}")
    return {
        "Image": str(container.get("Image") or DEFAULT_IMAGE),
        "ModelDataUrl": str(container["ModelDataUrl"]),
        "Environment": {str(k): str(v) for k, v in (container.get("Environment") or {}).items()},
    }


def _check_model_dir(uri: str, dest: Path) -> dict[str, Any]:
    """model.json of an unpacked artifact, checked for what serving needs."""
    meta = read_model_json(dest, source=uri)
    missing = [k for k in ("image_shape", "num_classes") if k not in meta]
    if missing:
        raise ValidationError(f"{uri}: model.json lacks {', '.join(missing)}")
    if not ((dest / ONNX).is_file() or (dest / WEIGHTS).is_file()):
        raise ValidationError(f"{uri}: the artifact holds neither {ONNX} nor {WEIGHTS}")
    shape = meta["image_shape"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(x, int) and x > 0 for x in shape)):
        raise ValidationError(f"{uri}: model.json image_shape must be [channels, height, width]")
    return meta


def _exists(name: str) -> ConflictError:
    return ConflictError(f"Model {name!r} already exists: delete it first or choose another name")
