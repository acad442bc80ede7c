"""Endpoint configurations (Create/Describe/List/DeleteEndpointConfig): the variants an endpoint serves.

A variant names a model, how many instances (model-worker processes) serve it and its share of the traffic.
An endpoint keeps a snapshot of its config's variants (and DataCaptureConfig, ``tailor.hosting.capture``), so
a config may be deleted while an endpoint uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete

from tailor.db import Database, utcnow
from tailor.errors import ConflictError, ValidationError
from tailor.hosting.capture import CaptureConfigs, parse_config
from tailor.hosting.models import Models
from tailor.hosting.store import EndpointConfigRow
from tailor.resources import arn, check_name, fetch, list_request, paginate
from tailor.settings import Settings

MAX_VARIANTS = 10
MAX_INSTANCES = 16  # local worker processes per variant; each is a full model server


@dataclass(eq=False)
class EndpointConfigs:
    settings: Settings
    db: Database
    models: Models
    capture: CaptureConfigs

    def create(self, spec: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        spec = {**(spec or {}), **kwargs}
        name = check_name("EndpointConfigName", spec.get("EndpointConfigName"))
        raw = spec.get("ProductionVariants")
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_VARIANTS:
            raise ValidationError(f"ProductionVariants must list 1 to {MAX_VARIANTS} variants")
        variants = [self._variant(i, v) for i, v in enumerate(raw)]
        names = [v["VariantName"] for v in variants]
        if len(set(names)) != len(names):
            raise ValidationError(f"ProductionVariants: VariantName values must be unique, got {names}")
        capture = parse_config(spec["DataCaptureConfig"]) if spec.get("DataCaptureConfig") is not None else None
        row = EndpointConfigRow(
            name=name,
            arn=arn(self.settings.region, self.settings.account_id, "endpoint-config", name),
            variants=variants,
            creation_time=utcnow(),
        )
        with self.db.session() as s:
            if s.get(EndpointConfigRow, name) is not None:
                raise ConflictError(f"Endpoint configuration {name!r} already exists")
            s.add(row)
        self.capture.put("endpoint-config", name, capture)
        return {"EndpointConfigArn": row.arn}

    def _variant(self, i: int, v: Any) -> dict[str, Any]:
        where = f"ProductionVariants[{i}]"
        if not isinstance(v, dict):
            raise ValidationError(f"{where} must be an object")
        check_name(f"{where}.VariantName", v.get("VariantName"))
        self.models.get(check_name(f"{where}.ModelName", v.get("ModelName")))
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

    def get(self, name: str) -> EndpointConfigRow:
        return fetch(self.db, EndpointConfigRow, name, "Endpoint configuration")

    def describe(self, name: str) -> dict[str, Any]:
        row = self.get(name)
        out = {
            "EndpointConfigName": row.name,
            "EndpointConfigArn": row.arn,
            "ProductionVariants": row.variants,
            "CreationTime": row.creation_time,
        }
        if (capture := self.capture.get("endpoint-config", name)) is not None:
            out["DataCaptureConfig"] = capture
        return out

    def list(self, filters: dict[str, Any] | None = None, /, **kwargs: Any) -> dict[str, Any]:
        """Filters as a request dict (the SageMaker protocol) and/or keywords."""
        rows, token = paginate(self.db, EndpointConfigRow, list_request(filters, kwargs))
        out: dict[str, Any] = {
            "EndpointConfigs": [
                {"EndpointConfigName": r.name, "EndpointConfigArn": r.arn, "CreationTime": r.creation_time}
                for r in rows
            ]
        }
        if token:
            out["NextToken"] = token
        return out

    def delete(self, name: str) -> dict[str, Any]:
        self.get(name)
        with self.db.session() as s:
            s.execute(delete(EndpointConfigRow).where(EndpointConfigRow.name == name))
        self.capture.put("endpoint-config", name, None)
        return {}
