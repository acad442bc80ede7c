"""HostingService: the one implementation of SageMaker's model, endpoint-config and endpoint APIs, plus invoke.

Every surface (SDK in-process, REST, SageMaker-compatible API, CLI) calls this. Shapes are botocore's
(DescribeModel, DescribeEndpointConfig, DescribeEndpoint, List*) as plain dicts with ``datetime`` values.

- CreateModel downloads ``PrimaryContainer.ModelDataUrl`` through Storage and unpacks it with the artifact's
  ``safe_extract`` (no absolute paths, ``..``, links, devices or oversize members) into
  ``models_dir/<server-made id>/``; model.json is validated and weights are safetensors/ONNX only.
- CreateEndpoint starts one worker process per instance (``tailor.serving.worker``) and turns InService once
  every worker answers /ping, or Failed with the worker's last log line as FailureReason.
- UpdateEndpoint starts the new config's workers beside the old ones, switches routing in one transaction
  (a new generation), lets the old workers drain for longer than the routers' cache TTL, then stops them:
  requests during the switch go to old or new workers and none fails (the router also retries a worker
  that vanished). If the new workers fail, the endpoint stays on its old config with a FailureReason.
- DeleteEndpoint: Deleting, workers stopped, then the endpoint is gone.
- ``serve()`` (the Tailor server) runs a supervisor: restarts crashed workers, relaunches the workers of
  InService endpoints after a restart, samples worker CPU/memory and flushes per-minute metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import delete, func, select

from tailor.db import Database
from tailor.errors import ConflictError, NotFoundError, ServiceUnavailableError, TailorError, ValidationError
from tailor.jobs.service import _decode_token, _encode_token, as_datetime
from tailor.jobs.store import utcnow
from tailor.backends import local as wk
from tailor.hosting.store import (
    EndpointConfigRow,
    EndpointMetricDetailRow,
    EndpointMetricRow,
    EndpointRow,
    ModelRow,
    WorkerRow,
)
from tailor.serving.metrics import EndpointMetrics, merge_histogram, percentile
from tailor.serving.router import Invocation, Router, VariantRoute
from tailor.settings import Settings
from tailor.storage import Storage

NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
ENDPOINT_STATUSES = (
    "OutOfService",
    "Creating",
    "Updating",
    "SystemUpdating",
    "RollingBack",
    "InService",
    "Deleting",
    "Failed",
    "UpdateRollbackFailed",
)
MAX_VARIANTS = 10
MAX_INSTANCES = 16  # local worker processes per variant; each is a full model server
DRAIN_S = 1.0  # > 2x the router's 0.25 s routing-cache TTL, so every process has switched before old workers stop
SUPERVISE_EVERY_S = 1.0
FLUSH_EVERY_S = 2.0
SAMPLE_EVERY_S = 5.0
DEFAULT_IMAGE = "tailor/image-classification"


def _check_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValidationError(f"{kind} {name!r} is invalid: 1-63 letters, digits and hyphens, starting alphanumeric")
    return name


class HostingService:
    def __init__(self, settings: Settings, db: Database, storage: Storage) -> None:
        self.settings = settings
        self.db = db
        self.storage = storage
        self.metrics = EndpointMetrics()
        self.router = Router(self._resolve, self.metrics)
        self._procs: dict[str, Any] = {}  # worker id -> Popen (our children, to reap)
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._ops: list[threading.Thread] = []
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._recovering: set[str] = set()
        self._batch_seen: dict[str, tuple[int | None, int, int]] = {}  # worker id -> (pid, batches, images)
        self.worker_options: dict[str, Any] = {}  # max_batch_size / max_delay_ms for new workers (bench, tests)
        self.max_member_bytes: int | None = None  # per-file cap when unpacking artifacts (None: the artifact default)

    # -- ARNs ----------------------------------------------------------------------------------------
    def _arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.settings.region}:{self.settings.account_id}:{kind}/{name}"

    def model_arn(self, name: str) -> str:
        return self._arn("model", name)

    def endpoint_config_arn(self, name: str) -> str:
        return self._arn("endpoint-config", name)

    def endpoint_arn(self, name: str) -> str:
        return self._arn("endpoint", name)

    # == models ======================================================================================
    def create_model(self, spec: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        spec = {**(spec or {}), **kwargs}
        name = _check_name("ModelName", spec.get("ModelName"))
        container = spec.get("PrimaryContainer")
        if container is None and spec.get("Containers"):
            if len(spec["Containers"]) != 1:
                raise ValidationError("Containers: Tailor serves one container per model; pass PrimaryContainer")
            container = spec["Containers"][0]
        if not isinstance(container, dict) or not container.get("ModelDataUrl"):
            raise ValidationError("PrimaryContainer.ModelDataUrl is required: the URI of a model.tar.gz")
        container = {
            "Image": str(container.get("Image") or DEFAULT_IMAGE),
            "ModelDataUrl": str(container["ModelDataUrl"]),
            "Environment": {str(k): str(v) for k, v in (container.get("Environment") or {}).items()},
        }
        with self.db.session() as s:
            if s.get(ModelRow, name) is not None:
                raise ConflictError(f"Model {name!r} already exists: delete it first or choose another name")
        model_id = uuid.uuid4().hex
        dest = self.settings.models_dir / model_id
        meta = self._unpack(container["ModelDataUrl"], dest)
        row = ModelRow(
            name=name,
            arn=self.model_arn(name),
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
                    raise ConflictError(f"Model {name!r} already exists: delete it first or choose another name")
                s.add(row)
        except TailorError:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        return {"ModelArn": row.arn}

    def _unpack(self, uri: str, dest: Path) -> dict[str, Any]:
        """Download and safely unpack an artifact; returns the parts of model.json serving needs."""
        from tailor.artifact import ONNX, WEIGHTS, read_model_json, safe_extract

        self.settings.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.settings.cache_dir, prefix="model-") as tmp:
            tar = Path(tmp) / "model.tar.gz"
            self.storage.download_file(uri, tar)
            try:
                if self.max_member_bytes is None:
                    safe_extract(tar, dest)
                else:
                    safe_extract(tar, dest, max_member_bytes=self.max_member_bytes)
                meta = read_model_json(dest)
                missing = [k for k in ("image_shape", "num_classes") if k not in meta]
                if missing:
                    raise ValidationError(f"{uri}: model.json lacks {', '.join(missing)}")
                if not ((dest / ONNX).is_file() or (dest / WEIGHTS).is_file()):
                    raise ValidationError(f"{uri}: the artifact holds neither {ONNX} nor {WEIGHTS}")
                shape = meta["image_shape"]
                if not (
                    isinstance(shape, list) and len(shape) == 3 and all(isinstance(x, int) and x > 0 for x in shape)
                ):
                    raise ValidationError(f"{uri}: model.json image_shape must be [channels, height, width]")
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

    def _model(self, name: str) -> ModelRow:
        with self.db.session() as s:
            row = s.get(ModelRow, name)
        if row is None:
            raise NotFoundError(f"Model {name!r} does not exist")
        return row

    def model_dir(self, name: str) -> Path:
        return self.settings.models_dir / self._model(name).model_id

    def describe_model(self, name: str) -> dict[str, Any]:
        row = self._model(name)
        out = {
            "ModelName": row.name,
            "PrimaryContainer": row.spec["PrimaryContainer"],
            "CreationTime": row.creation_time,
            "ModelArn": row.arn,
        }
        if row.spec.get("ExecutionRoleArn"):
            out["ExecutionRoleArn"] = row.spec["ExecutionRoleArn"]
        return out

    def list_models(self, filters: dict[str, Any] | None = None, /, **kwargs: Any) -> dict[str, Any]:
        """Filters as a request dict (the SageMaker protocol) and/or keywords."""
        return _call_listing(self._list_models, {**(filters or {}), **kwargs})

    def _list_models(
        self,
        *,
        NameContains: str | None = None,
        CreationTimeAfter: Any = None,
        CreationTimeBefore: Any = None,
        SortBy: str = "CreationTime",
        SortOrder: str = "Descending",
        MaxResults: int = 10,
        NextToken: str | None = None,
    ) -> dict[str, Any]:
        rows, token = self._page(
            ModelRow,
            NameContains,
            None,
            CreationTimeAfter,
            CreationTimeBefore,
            SortBy,
            SortOrder,
            MaxResults,
            NextToken,
        )
        out: dict[str, Any] = {
            "Models": [{"ModelName": r.name, "ModelArn": r.arn, "CreationTime": r.creation_time} for r in rows]
        }
        if token:
            out["NextToken"] = token
        return out

    def delete_model(self, name: str) -> dict[str, Any]:
        row = self._model(name)
        with self.db.session() as s:
            s.execute(delete(ModelRow).where(ModelRow.name == name))
            in_use = s.scalar(select(func.count()).select_from(WorkerRow).where(WorkerRow.model_name == name))
        if not in_use:  # running workers keep their files until their endpoint moves on
            shutil.rmtree(self.settings.models_dir / row.model_id, ignore_errors=True)
        return {}

    # == endpoint configs ============================================================================
    def create_endpoint_config(self, spec: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        spec = {**(spec or {}), **kwargs}
        name = _check_name("EndpointConfigName", spec.get("EndpointConfigName"))
        raw = spec.get("ProductionVariants")
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_VARIANTS:
            raise ValidationError(f"ProductionVariants must list 1 to {MAX_VARIANTS} variants")
        variants = [self._variant(i, v) for i, v in enumerate(raw)]
        names = [v["VariantName"] for v in variants]
        if len(set(names)) != len(names):
            raise ValidationError(f"ProductionVariants: VariantName values must be unique, got {names}")
        row = EndpointConfigRow(
            name=name, arn=self.endpoint_config_arn(name), variants=variants, creation_time=utcnow()
        )
        with self.db.session() as s:
            if s.get(EndpointConfigRow, name) is not None:
                raise ConflictError(f"Endpoint configuration {name!r} already exists")
            s.add(row)
        return {"EndpointConfigArn": row.arn}

    def _variant(self, i: int, v: Any) -> dict[str, Any]:
        where = f"ProductionVariants[{i}]"
        if not isinstance(v, dict):
            raise ValidationError(f"{where} must be an object")
        _check_name(f"{where}.VariantName", v.get("VariantName"))
        self._model(_check_name(f"{where}.ModelName", v.get("ModelName")))
        count = v.get("InitialInstanceCount", 1)
        if not isinstance(count, int) or not 1 <= count <= MAX_INSTANCES:
            raise ValidationError(f"{where}.InitialInstanceCount must be an integer 1..{MAX_INSTANCES}")
        try:
            weight = float(v.get("InitialVariantWeight", 1.0))
        except (TypeError, ValueError):
            raise ValidationError(f"{where}.InitialVariantWeight must be a number >= 0") from None
        if weight < 0:
            raise ValidationError(f"{where}.InitialVariantWeight must be >= 0")
        return {
            "VariantName": v["VariantName"],
            "ModelName": v["ModelName"],
            "InitialInstanceCount": count,
            "InstanceType": str(v.get("InstanceType") or "ml.m5.large"),
            "InitialVariantWeight": weight,
        }

    def _config(self, name: str) -> EndpointConfigRow:
        with self.db.session() as s:
            row = s.get(EndpointConfigRow, name)
        if row is None:
            raise NotFoundError(f"Endpoint configuration {name!r} does not exist")
        return row

    def describe_endpoint_config(self, name: str) -> dict[str, Any]:
        row = self._config(name)
        return {
            "EndpointConfigName": row.name,
            "EndpointConfigArn": row.arn,
            "ProductionVariants": row.variants,
            "CreationTime": row.creation_time,
        }

    def list_endpoint_configs(self, filters: dict[str, Any] | None = None, /, **kwargs: Any) -> dict[str, Any]:
        """Filters as a request dict (the SageMaker protocol) and/or keywords."""
        return _call_listing(self._list_endpoint_configs, {**(filters or {}), **kwargs})

    def _list_endpoint_configs(
        self,
        *,
        NameContains: str | None = None,
        CreationTimeAfter: Any = None,
        CreationTimeBefore: Any = None,
        SortBy: str = "CreationTime",
        SortOrder: str = "Descending",
        MaxResults: int = 10,
        NextToken: str | None = None,
    ) -> dict[str, Any]:
        rows, token = self._page(
            EndpointConfigRow,
            NameContains,
            None,
            CreationTimeAfter,
            CreationTimeBefore,
            SortBy,
            SortOrder,
            MaxResults,
            NextToken,
        )
        out: dict[str, Any] = {
            "EndpointConfigs": [
                {"EndpointConfigName": r.name, "EndpointConfigArn": r.arn, "CreationTime": r.creation_time}
                for r in rows
            ]
        }
        if token:
            out["NextToken"] = token
        return out

    def delete_endpoint_config(self, name: str) -> dict[str, Any]:
        self._config(name)
        with self.db.session() as s:
            s.execute(delete(EndpointConfigRow).where(EndpointConfigRow.name == name))
        return {}

    # == endpoints ===================================================================================
    def _endpoint_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(name, threading.Lock())

    def _endpoint(self, name: str) -> EndpointRow:
        with self.db.session() as s:
            row = s.get(EndpointRow, name)
        if row is None:
            raise NotFoundError(f"Endpoint {name!r} does not exist")
        return row

    def create_endpoint(self, spec: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        spec = {**(spec or {}), **kwargs}
        name = _check_name("EndpointName", spec.get("EndpointName"))
        config = self._config(_check_name("EndpointConfigName", spec.get("EndpointConfigName")))
        now = utcnow()
        row = EndpointRow(
            name=name,
            arn=self.endpoint_arn(name),
            config_name=config.name,
            variants=config.variants,
            status="Creating",
            generation=1,
            creation_time=now,
            last_modified_time=now,
        )
        with self.db.session() as s:
            if s.get(EndpointRow, name) is not None:
                raise ConflictError(f"Endpoint {name!r} already exists")
            s.add(row)
        self._background(f"create-{name}", lambda: self._deploy_first(name, config.variants))
        return {"EndpointArn": row.arn}

    def _background(self, label: str, fn: Callable[[], None]) -> None:
        # Not a daemon: an embedded CLI process waits for the endpoint to settle before it exits.
        t = threading.Thread(target=fn, name=f"tailor-hosting-{label}")
        self._ops = [o for o in self._ops if o.is_alive()] + [t]
        t.start()

    def _deploy_first(self, name: str, variants: list[dict[str, Any]]) -> None:
        with self._endpoint_lock(name):
            try:
                self._start_workers(name, 1, variants)
            except TailorError as err:
                self._stop_generation(name, 1)
                self._set(name, status="Failed", failure_reason=str(err)[:1024])
                return
            self._set(name, status="InService", failure_reason=None)
            self.router.invalidate(name)

    def update_endpoint(self, spec: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        spec = {**(spec or {}), **kwargs}
        name = _check_name("EndpointName", spec.get("EndpointName"))
        config = self._config(_check_name("EndpointConfigName", spec.get("EndpointConfigName")))
        with self.db.session() as s:
            row = s.get(EndpointRow, name)
            if row is None:
                raise NotFoundError(f"Endpoint {name!r} does not exist")
            if row.status != "InService":
                raise ValidationError(f"Endpoint {name!r} is {row.status}; it can be updated only when InService")
            row.status = "Updating"
            row.pending_config_name = config.name
            row.last_modified_time = utcnow()
            arn, old_gen = row.arn, row.generation
        self._background(f"update-{name}", lambda: self._switch(name, old_gen, config.name, config.variants))
        return {"EndpointArn": arn}

    def _switch(self, name: str, old_gen: int, config_name: str, variants: list[dict[str, Any]]) -> None:
        new_gen = old_gen + 1
        with self._endpoint_lock(name):
            try:
                self._start_workers(name, new_gen, variants)
            except TailorError as err:
                self._stop_generation(name, new_gen)
                self._set(name, status="InService", pending_config_name=None, failure_reason=str(err)[:1024])
                return
            # The switch: one transaction moves routing to the new generation.
            with self.db.session() as s:
                row = s.get(EndpointRow, name)
                assert row is not None
                row.generation, row.config_name, row.variants = new_gen, config_name, variants
                row.status, row.pending_config_name, row.failure_reason = "InService", None, None
                row.last_modified_time = utcnow()
                for w in s.scalars(
                    select(WorkerRow).where(WorkerRow.endpoint_name == name, WorkerRow.generation == old_gen)
                ):
                    w.state = "draining"
            self.router.invalidate(name)
            time.sleep(DRAIN_S)
            self._stop_generation(name, old_gen)

    def delete_endpoint(self, name: str) -> dict[str, Any]:
        with self.db.session() as s:
            row = s.get(EndpointRow, name)
            if row is None:
                raise NotFoundError(f"Endpoint {name!r} does not exist")
            if row.status == "Deleting":
                return {}
            row.status = "Deleting"
            row.last_modified_time = utcnow()
        self.router.invalidate(name)

        def run() -> None:
            with self._endpoint_lock(name):
                self._stop_generation(name, None)
                with self.db.session() as s:
                    s.execute(delete(EndpointRow).where(EndpointRow.name == name))
                self.router.invalidate(name)

        self._background(f"delete-{name}", run)
        return {}

    def describe_endpoint(self, name: str) -> dict[str, Any]:
        row = self._endpoint(name)
        with self.db.session() as s:
            workers = list(s.scalars(select(WorkerRow).where(WorkerRow.endpoint_name == name)))
            images = {
                r.name: r.spec["PrimaryContainer"]["Image"]
                for r in s.scalars(select(ModelRow).where(ModelRow.name.in_([v["ModelName"] for v in row.variants])))
            }
        out: dict[str, Any] = {
            "EndpointName": row.name,
            "EndpointArn": row.arn,
            "EndpointConfigName": row.config_name,
            "ProductionVariants": [self._variant_summary(row, v, workers, images) for v in row.variants],
            "EndpointStatus": row.status,
            "CreationTime": row.creation_time,
            "LastModifiedTime": row.last_modified_time,
        }
        if row.failure_reason:
            out["FailureReason"] = row.failure_reason
        if row.pending_config_name:
            out["PendingDeploymentSummary"] = {
                "EndpointConfigName": row.pending_config_name,
                "StartTime": row.last_modified_time,
            }
        return out

    def _variant_summary(
        self, row: EndpointRow, v: dict[str, Any], workers: list[WorkerRow], images: dict[str, str]
    ) -> dict[str, Any]:
        ready = [
            w
            for w in workers
            if w.generation == row.generation and w.variant_name == v["VariantName"] and w.state == "ready"
        ]
        image = images.get(v["ModelName"], DEFAULT_IMAGE)
        return {
            "VariantName": v["VariantName"],
            "DeployedImages": [{"SpecifiedImage": image, "ResolvedImage": image, "ResolutionTime": row.creation_time}],
            "CurrentWeight": v["InitialVariantWeight"],
            "DesiredWeight": v["InitialVariantWeight"],
            "CurrentInstanceCount": len(ready),
            "DesiredInstanceCount": v["InitialInstanceCount"],
            "InstanceType": v["InstanceType"],
            "ModelName": v["ModelName"],
        }

    def list_endpoints(self, filters: dict[str, Any] | None = None, /, **kwargs: Any) -> dict[str, Any]:
        """Filters as a request dict (the SageMaker protocol) and/or keywords."""
        return _call_listing(self._list_endpoints, {**(filters or {}), **kwargs})

    def _list_endpoints(
        self,
        *,
        NameContains: str | None = None,
        StatusEquals: str | None = None,
        CreationTimeAfter: Any = None,
        CreationTimeBefore: Any = None,
        LastModifiedTimeAfter: Any = None,
        LastModifiedTimeBefore: Any = None,
        SortBy: str = "CreationTime",
        SortOrder: str = "Descending",
        MaxResults: int = 10,
        NextToken: str | None = None,
    ) -> dict[str, Any]:
        if StatusEquals is not None and StatusEquals not in ENDPOINT_STATUSES:
            raise ValidationError(f"StatusEquals {StatusEquals!r}: use one of {', '.join(ENDPOINT_STATUSES)}")
        rows, token = self._page(
            EndpointRow,
            NameContains,
            StatusEquals,
            CreationTimeAfter,
            CreationTimeBefore,
            SortBy,
            SortOrder,
            MaxResults,
            NextToken,
            modified=(LastModifiedTimeAfter, LastModifiedTimeBefore),
        )
        out: dict[str, Any] = {
            "Endpoints": [
                {
                    "EndpointName": r.name,
                    "EndpointArn": r.arn,
                    "CreationTime": r.creation_time,
                    "LastModifiedTime": r.last_modified_time,
                    "EndpointStatus": r.status,
                }
                for r in rows
            ]
        }
        if token:
            out["NextToken"] = token
        return out

    def wait_endpoint(self, name: str, timeout: float = 300.0, poll: float = 0.1) -> dict[str, Any]:
        """Wait until the endpoint leaves Creating/Updating/Deleting; returns its description ({} when deleted)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                desc = self.describe_endpoint(name)
            except NotFoundError:
                return {}
            if desc["EndpointStatus"] not in ("Creating", "Updating", "Deleting", "SystemUpdating", "RollingBack"):
                return desc
            if time.monotonic() > deadline:
                raise ServiceUnavailableError(
                    f"Endpoint {name!r} is still {desc['EndpointStatus']} after {timeout:g} s"
                )
            time.sleep(poll)

    # -- workers ------------------------------------------------------------------------------------
    def _set(self, name: str, **fields: Any) -> None:
        with self.db.session() as s:
            row = s.get(EndpointRow, name)
            if row is None:
                return
            for k, v in fields.items():
                setattr(row, k, v)
            row.last_modified_time = utcnow()

    def _log_path(self, name: str, worker_id: str) -> Path:
        return self.settings.home / "endpoints" / name / f"worker-{worker_id}.log"

    def _start_workers(self, name: str, generation: int, variants: list[dict[str, Any]]) -> None:
        """Launch every instance of every variant, then wait until each answers /ping."""
        rows: list[WorkerRow] = []
        for v in variants:
            model_dir = str(self.model_dir(v["ModelName"]))
            for _ in range(v["InitialInstanceCount"]):
                wid = uuid.uuid4().hex[:16]
                rows.append(
                    WorkerRow(
                        id=wid,
                        endpoint_name=name,
                        generation=generation,
                        variant_name=v["VariantName"],
                        model_name=v["ModelName"],
                        model_dir=model_dir,
                        socket_path=str(wk.socket_dir() / f"{wid}.sock"),
                        state="starting",
                        owner_pid=None,
                    )
                )
        with self.db.session() as s:
            s.add_all(rows)
        for w in rows:
            self._spawn(w)
        errors = []
        for w in rows:
            try:
                wk.wait_ready(self._procs[w.id], w.socket_path, self._log_path(name, w.id))
                self._mark(w.id, "ready")
            except TailorError as err:
                errors.append(f"variant {w.variant_name}: {err}")
        if errors:
            raise ServiceUnavailableError(errors[0])

    def _spawn(self, w: WorkerRow) -> None:
        proc = wk.launch(w.model_dir, w.socket_path, self._log_path(w.endpoint_name, w.id), **self.worker_options)
        self._procs[w.id] = proc
        with self.db.session() as s:
            row = s.get(WorkerRow, w.id)
            if row is not None:
                row.pid, row.process_start_time, row.owner_pid = proc.pid, wk.start_time(proc.pid), _my_pid()

    def _mark(self, worker_id: str, state: str) -> None:
        with self.db.session() as s:
            row = s.get(WorkerRow, worker_id)
            if row is not None:
                row.state = state

    def _stop_generation(self, name: str, generation: int | None) -> None:
        with self.db.session() as s:
            q = select(WorkerRow).where(WorkerRow.endpoint_name == name)
            if generation is not None:
                q = q.where(WorkerRow.generation == generation)
            rows = list(s.scalars(q))
        self.sample_batches([w for w in rows if w.owner_pid == _my_pid()])  # their last batches count too
        threads = [threading.Thread(target=wk.stop, args=(w.pid, w.process_start_time)) for w in rows]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with self.db.session() as s:
            s.execute(delete(WorkerRow).where(WorkerRow.id.in_([w.id for w in rows])))
        for w in rows:
            proc = self._procs.pop(w.id, None)
            if proc is not None:
                proc.poll()
            Path(w.socket_path).unlink(missing_ok=True)

    # -- routing ------------------------------------------------------------------------------------
    def _resolve(self, name: str) -> tuple[VariantRoute, ...]:
        with self.db.session() as s:
            row = s.get(EndpointRow, name)
            if row is None:
                raise NotFoundError(f"Endpoint {name!r} does not exist")
            if row.status not in ("InService", "Updating"):
                raise ValidationError(f"Endpoint {name!r} is {row.status}, not InService: it cannot be invoked now")
            ws = list(
                s.scalars(
                    select(WorkerRow).where(WorkerRow.endpoint_name == name, WorkerRow.generation == row.generation)
                )
            )
        orphaned = [w for w in ws if w.state == "ready" and not _owner_alive(w.owner_pid)]
        if orphaned and name not in self._recovering:
            # An embedded process finds workers whose owner exited: relaunch them here, unless this process's
            # supervisor (or an update) holds the endpoint already; then callers get a quick 503 meanwhile.
            lock = self._endpoint_lock(name)
            if lock.acquire(blocking=False):
                try:
                    self._relaunch(name, orphaned)
                finally:
                    lock.release()
                return self._resolve(name)
        return tuple(
            VariantRoute(
                v["VariantName"],
                float(v["InitialVariantWeight"]),
                tuple(w.socket_path for w in ws if w.variant_name == v["VariantName"] and w.state == "ready"),
            )
            for v in row.variants
        )

    def _relaunch(self, name: str, rows: list[WorkerRow]) -> None:
        self._recovering.add(name)
        try:
            for w in rows:
                wk.stop(w.pid, w.process_start_time)
                self._mark(w.id, "starting")  # out of the routing table until it answers /ping again
                self._spawn(w)
            for w in rows:
                try:
                    wk.wait_ready(self._procs[w.id], w.socket_path, self._log_path(name, w.id))
                    self._mark(w.id, "ready")
                except TailorError:
                    self._mark(w.id, "failed")
                with self.db.session() as s:
                    row = s.get(WorkerRow, w.id)
                    if row is not None:
                        row.restarts += 1
        finally:
            self._recovering.discard(name)

    async def ainvoke(self, name: str, body: bytes, content_type: str, accept: str = "") -> Invocation:
        """Invoke on the caller's event loop (the REST route)."""
        return await self.router.invoke(name, content_type or "", accept or "", body)

    def invoke(self, name: str, body: bytes, content_type: str, accept: str = "") -> Invocation:
        """Blocking invoke for the in-process SDK (runs on a private event-loop thread)."""
        fut: Future[Invocation] = asyncio.run_coroutine_threadsafe(
            self.ainvoke(name, body, content_type, accept), self._event_loop()
        )
        return fut.result()

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._loop_thread = threading.Thread(target=loop.run_forever, name="tailor-hosting-loop", daemon=True)
                self._loop_thread.start()
                self._loop = loop
            return self._loop

    # -- metrics ------------------------------------------------------------------------------------
    def flush_metrics(self) -> None:
        deltas = self.metrics.drain()
        if not deltas:
            return
        with self.db.session() as s:
            for (endpoint, variant, minute), b in deltas.items():
                row = s.get(EndpointMetricRow, (endpoint, variant, minute))
                if row is None:
                    row = EndpointMetricRow(
                        endpoint_name=endpoint,
                        variant_name=variant,
                        minute=minute,
                        invocations=0,
                        errors_4xx=0,
                        errors_5xx=0,
                        model_latency_us=0.0,
                        overhead_latency_us=0.0,
                        max_model_latency_us=0.0,
                        instances=0,
                        cpu_percent=0.0,
                        memory_bytes=0.0,
                        samples=0,
                    )
                    s.add(row)
                row.invocations += b.invocations
                row.errors_4xx += b.errors_4xx
                row.errors_5xx += b.errors_5xx
                row.model_latency_us += b.model_latency_us
                row.overhead_latency_us += b.overhead_latency_us
                row.max_model_latency_us = max(row.max_model_latency_us, b.max_model_latency_us)
                row.cpu_percent += b.cpu_percent
                row.memory_bytes += b.memory_bytes
                row.samples += b.samples
                row.instances = max(row.instances, b.instances)
                if b.latency_histogram or b.batches:
                    self._flush_details(s, (endpoint, variant, minute), b)

    @staticmethod
    def _flush_details(s: Any, key: tuple[str, str, datetime], b: Any) -> None:
        row = s.get(EndpointMetricDetailRow, key)
        if row is None:
            row = EndpointMetricDetailRow(
                endpoint_name=key[0],
                variant_name=key[1],
                minute=key[2],
                latency_histogram={},
                batches=0,
                batched_images=0,
            )
            s.add(row)
        hist = {int(k): int(v) for k, v in (row.latency_histogram or {}).items()}
        merge_histogram(hist, b.latency_histogram)
        row.latency_histogram = {str(k): v for k, v in sorted(hist.items())}  # a new dict: JSON change tracked
        row.batches += b.batches
        row.batched_images += b.batched_images

    def endpoint_metrics(self, name: str, since: Any = None) -> dict[str, Any]:
        """Per variant and minute: Invocations, Invocation4XXErrors, Invocation5XXErrors, ModelLatency and
        OverheadLatency (mean µs), ModelLatencyP50/ModelLatencyP99 (µs, within 2.5 %), MaxModelLatency,
        BatchSize (mean realised batch, images), Batches and BatchedImages, InvocationsPerInstance,
        CPUUtilization (% of one core per worker) and MemoryUtilization (% of this machine's memory per worker).
        Percentiles and batch figures are None for a minute that has none."""
        self._endpoint(name)
        self.sample_batches()
        self.flush_metrics()
        q = select(EndpointMetricRow).where(EndpointMetricRow.endpoint_name == name)
        dq = select(EndpointMetricDetailRow).where(EndpointMetricDetailRow.endpoint_name == name)
        if since is not None:
            q = q.where(EndpointMetricRow.minute >= as_datetime(since))
            dq = dq.where(EndpointMetricDetailRow.minute >= as_datetime(since))
        with self.db.session() as s:
            rows = list(s.scalars(q.order_by(EndpointMetricRow.minute, EndpointMetricRow.variant_name)))
            details = {
                (d.variant_name, as_datetime(d.minute)): (
                    {int(k): int(v) for k, v in (d.latency_histogram or {}).items()},
                    d.batches,
                    d.batched_images,
                )
                for d in s.scalars(dq)
            }
        total_mem = psutil.virtual_memory().total
        points = []
        for r in rows:
            n = max(r.invocations, 1)
            hist, batches, images = details.get((r.variant_name, as_datetime(r.minute)), ({}, 0, 0))
            points.append(
                {
                    "VariantName": r.variant_name,
                    "Timestamp": r.minute,
                    "Invocations": r.invocations,
                    "Invocation4XXErrors": r.errors_4xx,
                    "Invocation5XXErrors": r.errors_5xx,
                    "ModelLatency": r.model_latency_us / n,
                    "ModelLatencyP50": percentile(hist, 0.50),
                    "ModelLatencyP99": percentile(hist, 0.99),
                    "MaxModelLatency": r.max_model_latency_us,
                    "BatchSize": images / batches if batches else None,
                    "Batches": batches,
                    "BatchedImages": images,
                    "OverheadLatency": r.overhead_latency_us / n,
                    "InvocationsPerInstance": r.invocations / max(r.instances, 1),
                    "CPUUtilization": r.cpu_percent / r.samples if r.samples else None,
                    "MemoryUtilization": 100.0 * r.memory_bytes / r.samples / total_mem if r.samples else None,
                }
            )
        return {"EndpointName": name, "Metrics": points}

    def worker_stats(self) -> list[dict[str, Any]]:
        """Each ready worker's batcher counters (realised batch sizes etc.), labelled with endpoint and variant."""
        with self.db.session() as s:
            rows = list(s.scalars(select(WorkerRow).where(WorkerRow.state == "ready")))
        out = []
        for w in rows:
            st = wk.stats(w.socket_path)
            if st is not None:
                out.append({"EndpointName": w.endpoint_name, "VariantName": w.variant_name, "WorkerId": w.id, **st})
        return out

    # -- supervision --------------------------------------------------------------------------------
    def serve(self) -> HostingService:
        """Server mode: relaunch InService endpoints' workers, then supervise them in a background thread."""
        if self._supervisor is None:
            self._stop.clear()
            self._supervisor = threading.Thread(target=self._supervise, name="tailor-hosting-supervisor", daemon=True)
            self._supervisor.start()
        return self

    def _supervise(self) -> None:
        last_flush = last_sample = 0.0
        while not self._stop.is_set():
            try:
                self.supervise_once()
                now = time.monotonic()
                if now - last_sample >= SAMPLE_EVERY_S:
                    self.sample_workers()
                    self.sample_batches()
                    last_sample = now
                if now - last_flush >= FLUSH_EVERY_S:
                    self.flush_metrics()
                    last_flush = now
            except Exception:  # the supervisor must outlive one bad pass (a locked DB, a vanished process)
                import logging

                logging.getLogger("tailor.hosting").exception("hosting supervisor pass failed")
            self._stop.wait(SUPERVISE_EVERY_S)

    def supervise_once(self) -> list[str]:
        """Restart dead workers of InService/Updating endpoints; returns the ids restarted."""
        with self.db.session() as s:
            live = {
                r.name: r
                for r in s.scalars(select(EndpointRow).where(EndpointRow.status.in_(("InService", "Updating"))))
            }
            rows = [
                w
                for w in s.scalars(select(WorkerRow).where(WorkerRow.endpoint_name.in_(list(live))))
                if w.generation == live[w.endpoint_name].generation and w.state in ("ready", "failed")
            ]
        restarted = []
        for name in {w.endpoint_name for w in rows}:
            lock = self._endpoint_lock(name)
            if not lock.acquire(blocking=False):
                continue  # an update or delete is running on it
            try:
                dead = [w for w in rows if w.endpoint_name == name and not self._worker_alive(w)]
                if dead:
                    self.router.invalidate(name)
                    self._relaunch(name, dead)
                    self.router.invalidate(name)
                    restarted += [w.id for w in dead]
            finally:
                lock.release()
        return restarted

    def _worker_alive(self, w: WorkerRow) -> bool:
        proc = self._procs.get(w.id)
        if proc is not None and proc.poll() is not None:
            return False
        return w.state == "ready" and wk.alive(w.pid, w.process_start_time)

    def sample_workers(self) -> None:
        """CPU (% of one core) and RSS of every ready worker into this minute's metrics."""
        with self.db.session() as s:
            rows = list(s.scalars(select(WorkerRow).where(WorkerRow.state == "ready")))
        counts: dict[tuple[str, str], int] = {}
        for w in rows:
            counts[(w.endpoint_name, w.variant_name)] = counts.get((w.endpoint_name, w.variant_name), 0) + 1
        now = time.time()
        for w in rows:
            try:
                p = psutil.Process(w.pid or 0)
                cpu = p.cpu_percent(interval=None) if _seen(w.id) else _prime(p, w.id)
                mem = p.memory_info().rss
            except psutil.Error:
                continue
            self.metrics.sample(
                w.endpoint_name, w.variant_name, cpu, mem, counts[(w.endpoint_name, w.variant_name)], now
            )

    def sample_batches(self, rows: list[WorkerRow] | None = None) -> None:
        """Batches (and images in them) run by this process's workers since the last sample, into this minute.

        Only the owner samples a worker, so two processes reading the same workers never count a batch twice;
        a restarted worker (new pid) counts from zero.
        """
        if rows is None:
            with self.db.session() as s:
                q = select(WorkerRow).where(WorkerRow.state == "ready", WorkerRow.owner_pid == _my_pid())
                rows = list(s.scalars(q))
        now = time.time()
        for w in rows:
            st = wk.stats(w.socket_path)
            if st is None:
                continue
            pid, batches, images = st.get("pid"), int(st.get("batches", 0)), int(st.get("images", 0))
            last_pid, last_batches, last_images = self._batch_seen.get(w.id, (None, 0, 0))
            if last_pid != pid or batches < last_batches:
                last_batches = last_images = 0
            self._batch_seen[w.id] = (pid, batches, images)
            if batches > last_batches:
                self.metrics.batches(w.endpoint_name, w.variant_name, batches - last_batches, images - last_images, now)

    def close(self, *, stop_workers: bool = True) -> None:
        """Stop supervising; stop the workers this process owns (the next server relaunches InService ones)."""
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(10)
            self._supervisor = None
        for t in list(self._ops):
            t.join(60)
        with contextlib.suppress(Exception):  # closing must not fail on a metrics write
            self.flush_metrics()
        if stop_workers:
            with self.db.session() as s:
                mine = list(s.scalars(select(WorkerRow).where(WorkerRow.owner_pid == _my_pid())))
            for w in mine:
                wk.stop(w.pid, w.process_start_time)
                proc = self._procs.pop(w.id, None)
                if proc is not None:
                    proc.poll()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None

    # -- shared listing -----------------------------------------------------------------------------
    def _page(
        self,
        table: Any,
        name_contains: str | None,
        status: str | None,
        after: Any,
        before: Any,
        sort_by: str,
        sort_order: str,
        max_results: int,
        token: str | None,
        modified: tuple[Any, Any] = (None, None),
    ) -> tuple[list[Any], str | None]:
        columns = {"Name": table.name, "CreationTime": table.creation_time}
        if hasattr(table, "status"):
            columns["Status"] = table.status
        if sort_by not in columns:
            raise ValidationError(f"SortBy {sort_by!r}: use {', '.join(columns)}")
        if sort_order not in ("Ascending", "Descending"):
            raise ValidationError(f"SortOrder {sort_order!r}: use Ascending or Descending")
        if not 1 <= int(max_results) <= 100:
            raise ValidationError(f"MaxResults {max_results}: must be 1..100")
        q = select(table)
        if name_contains:
            q = q.where(func.lower(table.name).contains(name_contains.lower(), autoescape=True))
        if status:
            q = q.where(table.status == status)
        if after is not None:
            q = q.where(table.creation_time > as_datetime(after))
        if before is not None:
            q = q.where(table.creation_time < as_datetime(before))
        if modified[0] is not None:
            q = q.where(table.last_modified_time > as_datetime(modified[0]))
        if modified[1] is not None:
            q = q.where(table.last_modified_time < as_datetime(modified[1]))
        col = columns[sort_by]
        q = q.order_by(col.asc() if sort_order == "Ascending" else col.desc(), table.name.asc())
        offset = _decode_token(token)
        with self.db.session() as s:
            rows = list(s.scalars(q.offset(offset).limit(int(max_results) + 1)))
        next_token = _encode_token(offset + int(max_results)) if len(rows) > int(max_results) else None
        return rows[: int(max_results)], next_token


def _call_listing(fn: Callable[..., dict[str, Any]], filters: dict[str, Any]) -> dict[str, Any]:
    import inspect

    known = set(inspect.signature(fn).parameters)
    unknown = sorted(k for k, v in filters.items() if k not in known and v is not None)
    if unknown:
        raise ValidationError(f"unsupported list filter(s) {', '.join(unknown)}: use {', '.join(sorted(known))}")
    return fn(**{k: v for k, v in filters.items() if v is not None})


_PRIMED: set[str] = set()


def _seen(worker_id: str) -> bool:
    return worker_id in _PRIMED


def _prime(p: psutil.Process, worker_id: str) -> float:
    """psutil's first cpu_percent call only starts the measurement; report the lifetime average instead."""
    _PRIMED.add(worker_id)
    p.cpu_percent(interval=None)
    t = p.cpu_times()
    age = max(time.time() - p.create_time(), 1e-3)
    return 100.0 * (t.user + t.system) / age


def _my_pid() -> int:
    import os

    return os.getpid()


def _owner_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    if pid == _my_pid():
        return True
    return psutil.pid_exists(pid)


__all__ = ["HostingService", "ENDPOINT_STATUSES", "datetime"]
