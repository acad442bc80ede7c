"""InstanceType → the resources one instance takes on a cluster (the ray backend's placement bundles).

SageMaker names hardware by instance type; a Ray cluster knows CPUs, GPUs and memory. The table below gives
each SageMaker type its published vCPUs, GPUs and memory (GiB), so ``ml.p3.2xlarge`` asks the cluster for a
node with 8 CPUs, 1 GPU and 61 GiB free. Your cluster is not AWS: edit the mapping in
``$TAILOR_HOME/instance_types.toml`` (or ``instance_types_file``), one table per type, any subset of keys::

    ["ml.m5.xlarge"]
    cpus = 2          # a smaller slice of the host than AWS's 4 vCPUs
    memory_gib = 4
    ["gpu-box"]       # your own names work too
    cpus = 16
    gpus = 2
    resources = { rack7 = 1 }   # custom Ray resources (``ray start --resources``) pin instances to hosts

The local backend ignores this table (instance types are recorded as given).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tailor.errors import ValidationError


@dataclass(frozen=True)
class InstanceResources:
    cpus: float
    gpus: float = 0.0
    memory_gib: float = 0.0
    resources: dict[str, float] = field(default_factory=dict)

    def bundle(self) -> dict[str, float]:
        """One Ray placement-group bundle (memory in bytes, as Ray counts it)."""
        out: dict[str, float] = {"CPU": self.cpus, **self.resources}
        if self.gpus:
            out["GPU"] = self.gpus
        if self.memory_gib:
            out["memory"] = float(int(self.memory_gib * (1 << 30)))
        return out


# vCPUs, GPUs, GiB from AWS's published specifications of each SageMaker instance type.
DEFAULT_TYPES: dict[str, InstanceResources] = {
    "ml.t3.medium": InstanceResources(2, 0, 4),
    "ml.m5.large": InstanceResources(2, 0, 8),
    "ml.m5.xlarge": InstanceResources(4, 0, 16),
    "ml.m5.2xlarge": InstanceResources(8, 0, 32),
    "ml.m5.4xlarge": InstanceResources(16, 0, 64),
    "ml.c5.xlarge": InstanceResources(4, 0, 8),
    "ml.c5.2xlarge": InstanceResources(8, 0, 16),
    "ml.c5.4xlarge": InstanceResources(16, 0, 32),
    "ml.g4dn.xlarge": InstanceResources(4, 1, 16),
    "ml.g4dn.2xlarge": InstanceResources(8, 1, 32),
    "ml.g5.xlarge": InstanceResources(4, 1, 16),
    "ml.g5.2xlarge": InstanceResources(8, 1, 32),
    "ml.p3.2xlarge": InstanceResources(8, 1, 61),
    "ml.p3.8xlarge": InstanceResources(32, 4, 244),
    "ml.p3.16xlarge": InstanceResources(64, 8, 488),
    "ml.p4d.24xlarge": InstanceResources(96, 8, 1152),
    "ml.p5.48xlarge": InstanceResources(192, 8, 2048),
}
_KEYS = {"cpus", "gpus", "memory_gib", "resources"}


def load_table(path: Path | None) -> dict[str, InstanceResources]:
    """The default table with the entries of ``path`` (TOML) laid over it, key by key."""
    table = dict(DEFAULT_TYPES)
    if path is None or not path.is_file():
        return table
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ValidationError(f"{path}: {err}") from None
    for name, entry in raw.items():
        table[name] = _entry(path, name, entry, table.get(name))
    return table


def _entry(path: Path, name: str, entry: Any, base: InstanceResources | None) -> InstanceResources:
    if not isinstance(entry, dict) or not set(entry) <= _KEYS:
        raise ValidationError(f"{path}: [{name!r}] takes only {', '.join(sorted(_KEYS))}")
    if base is None and "cpus" not in entry:
        raise ValidationError(f"{path}: [{name!r}] is a new instance type: give its cpus")
    try:
        res = replace(
            base or InstanceResources(0),
            **{k: (dict(v) if k == "resources" else float(v)) for k, v in entry.items()},
        )
    except (TypeError, ValueError):
        raise ValidationError(f"{path}: [{name!r}] values must be numbers") from None
    if res.cpus < 0 or res.gpus < 0 or res.memory_gib < 0:
        raise ValidationError(f"{path}: [{name!r}] values must not be negative")
    return res


def resources_for(table: dict[str, InstanceResources], instance_type: str) -> InstanceResources:
    try:
        return table[instance_type]
    except KeyError:
        raise ValidationError(
            f"unknown InstanceType {instance_type!r} on the ray backend: add it to instance_types.toml "
            "(cpus, gpus, memory_gib)"
        ) from None
