"""Endpoints (Create/Update/Delete/Describe/List/WaitEndpoint): a name that routes to running instances.

- CreateEndpoint starts one instance per InitialInstanceCount of each variant and turns InService once every
  one answers /ping, or Failed with the failing worker's last log line as FailureReason.
- UpdateEndpoint starts the new config's instances beside the old ones, switches routing in one transaction
  (a new generation), lets the old instances drain for longer than the routers' cache TTL, then stops them:
  requests during the switch go to old or new instances and none fails (the router also retries a worker
  that vanished). If the new instances fail, the endpoint stays on its old config with a FailureReason.
- DeleteEndpoint: Deleting, instances stopped, then the endpoint is gone.

Create, update and delete return at once; the work runs on a background thread holding the endpoint's lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select

from tailor.db import Database, utcnow
from tailor.errors import ConflictError, NotFoundError, ServiceUnavailableError, TailorError, ValidationError
from tailor.hosting.capture import DataCapture
from tailor.hosting.capture import summary as capture_summary
from tailor.hosting.endpoint_configs import EndpointConfigs
from tailor.hosting.instances import EndpointLocks, Instances
from tailor.hosting.models import DEFAULT_IMAGE, Models
from tailor.hosting.store import EndpointRow, WorkerRow
from tailor.membership import Membership
from tailor.resources import arn, check_name, fetch, list_request, paginate, row_of
from tailor.serving.router import Router
from tailor.settings import Settings

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
_SETTLING = ("Creating", "Updating", "Deleting", "SystemUpdating", "RollingBack")
DRAIN_S = 1.0  # > 2x the router's 0.25 s routing-cache TTL, so every process has switched before old workers stop


@dataclass(eq=False)
class Endpoints:
    settings: Settings
    db: Database
    models: Models
    configs: EndpointConfigs
    instances: Instances
    locks: EndpointLocks
    router: Router
    capture: DataCapture
    membership: Membership | None = None  # several servers on PostgreSQL: who owns which endpoint
    _ops: list[threading.Thread] = field(default_factory=list, init=False)

    def get(self, name: str) -> EndpointRow:
        return fetch(self.db, EndpointRow, name, "Endpoint")

    # -- create, update, delete -------------------------------------------------------------------------
    def create(self, spec: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        spec = {**(spec or {}), **kwargs}
        name = check_name("EndpointName", spec.get("EndpointName"))
        config = self.configs.get(check_name("EndpointConfigName", spec.get("EndpointConfigName")))
        now = utcnow()
        row = EndpointRow(
            name=name,
            arn=arn(self.settings.region, self.settings.account_id, "endpoint", name),
            config_name=config.name,
            variants=config.variants,
            status="Creating",
            generation=1,
            creation_time=now,
            last_modified_time=now,
            owner_server=self.membership.id if self.membership else None,
        )
        with self.db.session() as s:
            if s.get(EndpointRow, name) is not None:
                raise ConflictError(f"Endpoint {name!r} already exists")
            s.add(row)
        self.capture.configs.snapshot(config.name, name)
        self.capture.invalidate(name)
        self._log(name, f"CreateEndpoint: config {config.name}, {_shape(config.variants)}")
        self._background(f"create-{name}", lambda: self._deploy_first(name, config.variants))
        return {"EndpointArn": row.arn}

    def _background(self, label: str, fn: Callable[[], None]) -> None:
        # Not a daemon: an embedded CLI process waits for the endpoint to settle before it exits.
        t = threading.Thread(target=fn, name=f"tailor-hosting-{label}")
        self._ops = [o for o in self._ops if o.is_alive()] + [t]
        t.start()

    def join(self, timeout: float = 60.0) -> None:
        """Wait for the creates, updates and deletes still running."""
        for t in list(self._ops):
            t.join(timeout)

    def _deploy_first(self, name: str, variants: list[dict[str, Any]]) -> None:
        with self.locks(name):
            try:
                self.instances.start_generation(name, 1, variants)
            except TailorError as err:
                self.instances.stop_generation(name, 1)
                self._set(name, status="Failed", failure_reason=str(err)[:1024])
                self._log(name, f"endpoint Failed: {err}")
                return
            self._set(name, status="InService", failure_reason=None)
            self.router.invalidate(name)
            self._log(name, "endpoint InService")

    def update(self, spec: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        spec = {**(spec or {}), **kwargs}
        name = check_name("EndpointName", spec.get("EndpointName"))
        config = self.configs.get(check_name("EndpointConfigName", spec.get("EndpointConfigName")))
        with self.db.session() as s:
            row = row_of(s, EndpointRow, name, "Endpoint", lock=True)
            if row.status != "InService":
                raise ValidationError(f"Endpoint {name!r} is {row.status}; it can be updated only when InService")
            row.status = "Updating"
            row.pending_config_name = config.name
            row.last_modified_time = utcnow()
            endpoint_arn, old_gen = row.arn, row.generation
            if self._remote(row, "update"):
                return {"EndpointArn": endpoint_arn}
        self._log(
            name, f"UpdateEndpoint: to config {config.name} (generation {old_gen + 1}), {_shape(config.variants)}"
        )
        self._background(f"update-{name}", lambda: self._switch(name, old_gen, config.name, config.variants))
        return {"EndpointArn": endpoint_arn}

    def _switch(self, name: str, old_gen: int, config_name: str, variants: list[dict[str, Any]]) -> None:
        new_gen = old_gen + 1
        with self.locks(name):
            try:
                self.instances.start_generation(name, new_gen, variants)
            except TailorError as err:
                self.instances.stop_generation(name, new_gen)
                self._set(name, status="InService", pending_config_name=None, failure_reason=str(err)[:1024])
                self._log(name, f"update failed, still serving generation {old_gen}: {err}")
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
            self.capture.configs.snapshot(config_name, name)
            self.capture.invalidate(name)
            self.router.invalidate(name)
            self._log(
                name, f"traffic switched to generation {new_gen} (config {config_name}); generation {old_gen} drains"
            )
            time.sleep(DRAIN_S)
            self.instances.stop_generation(name, old_gen)
            self._log(name, f"update done: generation {old_gen} stopped")

    def delete(self, name: str) -> dict[str, Any]:
        with self.db.session() as s:
            row = row_of(s, EndpointRow, name, "Endpoint", lock=True)
            if row.status == "Deleting":
                return {}
            row.status = "Deleting"
            row.last_modified_time = utcnow()
            if self._remote(row, "delete"):
                return {}
        self.router.invalidate(name)
        self._background(f"delete-{name}", lambda: self.remove(name))
        return {}

    def remove(self, name: str) -> None:
        """Stop every instance of a Deleting endpoint, then forget it."""
        self._log(name, "DeleteEndpoint: stopping every worker")
        with self.locks(name):
            self.instances.stop_generation(name, None)
            self._log(name, "endpoint deleted")  # before the row goes: a follower stops once it is gone
            with self.db.session() as s:
                s.execute(delete(EndpointRow).where(EndpointRow.name == name))
            self.capture.configs.put("endpoint", name, None)
            self.capture.invalidate(name)
            self.router.invalidate(name)

    def switch(self, name: str) -> None:
        """Carry out an update another server accepted (its row is Updating with a pending config)."""
        row = self.get(name)
        try:
            config = self.configs.get(row.pending_config_name or "")
        except NotFoundError as err:
            self._set(name, status="InService", pending_config_name=None, failure_reason=str(err))
            return
        self._switch(name, row.generation, config.name, config.variants)

    def _remote(self, row: EndpointRow, op: str) -> bool:
        """On a shared database, an update or delete of an endpoint another server owns is left in its row
        for that owner (its next heartbeat pass takes it), which runs the instances; True then. An
        endpoint of a dead server keeps the request until a live one adopts it and carries it out."""
        if self.membership is None or row.owner_server == self.membership.id:
            return False
        row.pending_op = op
        return True

    def _log(self, name: str, message: str) -> None:
        self.instances.logs.event(name, message)

    def _set(self, name: str, **fields: Any) -> None:
        with self.db.session() as s:
            row = s.get(EndpointRow, name)
            if row is None:
                return
            for k, v in fields.items():
                setattr(row, k, v)
            row.last_modified_time = utcnow()

    # -- read -------------------------------------------------------------------------------------------
    def describe(self, name: str) -> dict[str, Any]:
        row = self.get(name)
        workers = self.instances.of(name)
        images = self.models.images([v["ModelName"] for v in row.variants])
        out: dict[str, Any] = {
            "EndpointName": row.name,
            "EndpointArn": row.arn,
            "EndpointConfigName": row.config_name,
            "ProductionVariants": [_variant_summary(row, v, workers, images) for v in row.variants],
            "EndpointStatus": row.status,
            "CreationTime": row.creation_time,
            "LastModifiedTime": row.last_modified_time,
        }
        if (config := self.capture.configs.get("endpoint", name)) is not None:
            out["DataCaptureConfig"] = capture_summary(config)
        if row.failure_reason:
            out["FailureReason"] = row.failure_reason
        if row.pending_config_name:
            out["PendingDeploymentSummary"] = {
                "EndpointConfigName": row.pending_config_name,
                "StartTime": row.last_modified_time,
            }
        return out

    def list(self, filters: dict[str, Any] | None = None, /, **kwargs: Any) -> dict[str, Any]:
        """Filters as a request dict (the SageMaker protocol) and/or keywords."""
        rows, token = paginate(self.db, EndpointRow, list_request(filters, kwargs), statuses=ENDPOINT_STATUSES)
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

    def wait(self, name: str, timeout: float = 300.0, poll: float = 0.1) -> dict[str, Any]:
        """Wait until the endpoint leaves Creating/Updating/Deleting; returns its description ({} when deleted)."""
        return wait_settled(self.describe, name, timeout, poll)


def wait_settled(describe: Callable[[str], dict[str, Any]], name: str, timeout: float, poll: float) -> dict[str, Any]:
    """Poll ``describe`` (in-process or over HTTP) until the endpoint settles; {} once a deleted one is gone."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            desc = describe(name)
        except NotFoundError:
            return {}
        if desc["EndpointStatus"] not in _SETTLING:
            return desc
        if time.monotonic() > deadline:
            raise ServiceUnavailableError(f"Endpoint {name!r} is still {desc['EndpointStatus']} after {timeout:g} s")
        time.sleep(poll)


def _shape(variants: list[dict[str, Any]]) -> str:
    """For the runtime log: "variants AllTraffic: 2 x model fm (weight 1)"."""
    parts = [
        f"{v['VariantName']}: {v['InitialInstanceCount']} x model {v['ModelName']} "
        f"(weight {v['InitialVariantWeight']:g})"
        for v in variants
    ]
    return "variants " + "; ".join(parts)


def _variant_summary(
    row: EndpointRow, v: dict[str, Any], workers: list[WorkerRow], images: dict[str, str]
) -> dict[str, Any]:
    current = [w for w in workers if w.generation == row.generation and w.variant_name == v["VariantName"]]
    ready = [w for w in current if w.state == "ready"]
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
