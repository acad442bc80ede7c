"""Endpoint instances on Ray (the serving half of ``RayBackend``): one named, detached actor per instance.

- Placement: the actor asks for the resources of the variant's InstanceType (``instance_types``: CPUs, GPUs,
  memory, custom resources) with SPREAD scheduling, so a variant's instances land on different nodes while
  there are nodes to spread over. A type no node of the cluster could ever hold fails at once, with one line.
- Start: the actor (``ray_actor.InstanceActor``) downloads ModelDataUrl from S3 with the S3 settings it is
  given, loads it and serves frames over TCP on its node's IP; ``wait_ready`` returns that address,
  ``tcp://TOKEN@IP:PORT``, which hosting stores in place of the placeholder ``instance_address`` gave. TOKEN is
  a fresh 256-bit secret per start: the worker closes any connection that does not open with it.
- Found again by name: ``tailor-instance-<instance id>`` in the ``tailor`` namespace, detached, so it outlives
  the server that started it; a restarted server checks and stops it from the instance id alone (the DB row).
- Death: an actor whose node died, or that crashed, is dead to Ray (its name is released); ``instance_alive``
  says so and the supervisor starts a replacement in place (same instance id, new address). Ray itself never
  restarts it (``max_restarts=0``): a replacement must report its new address, which only hosting can store.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tailor.backends.base import Handle
from tailor.backends.instance_types import InstanceResources, resources_for
from tailor.backends.ray_actor import InstanceActor, node_settings
from tailor.backends.ray_cluster import NAMESPACE, require_ray
from tailor.errors import ServiceUnavailableError, ValidationError
from tailor.serving import wire
from tailor.settings import Settings

ACTOR_PREFIX = "tailor-instance-"
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0  # the worker lets in-flight requests finish for up to 10 s
LIVE_TTL_S = 0.5  # one GCS call lists every live instance; the supervisor asks once a second per instance
WORKER_OPTIONS = ("max_batch_size", "max_delay_ms", "max_image_pixels", "quantize")


def actor_name(instance_id: str) -> str:
    return f"{ACTOR_PREFIX}{instance_id}"


class RayInstances:
    settings: Settings
    instance_types: dict[str, InstanceResources]
    # Instances outlive the server that started them: its shutdown leaves them serving, and the next server
    # finds them by name instead of relaunching them (hosting asks this before stopping "owned" instances).
    detached_instances = True

    def instance_address(self, instance_id: str) -> str:
        return f"pending:{instance_id}"  # the real address is known once the actor listens (wait_ready)

    def start_instance(
        self, instance_id: str, model_dir: str, address: str, log_path: Path, options: Mapping[str, Any]
    ) -> Handle:
        ray = require_ray()
        url = str(options.get("model_data_url") or "")
        if not url.startswith("s3://") or not self.settings.s3_endpoint_url:
            raise ValidationError(
                "endpoints on the ray backend read ModelDataUrl from S3 on each node: use an s3:// ModelDataUrl "
                "and set s3_endpoint_url (TAILOR_S3_ENDPOINT_URL)"
            )
        instance_type = str(options.get("instance_type") or "")
        res = resources_for(self.instance_types, instance_type)
        _check_fits(ray, instance_type, res)
        self._kill(instance_id)  # a leftover of an earlier start under this name
        spec = {
            "model_data_url": url,
            "s3": node_settings(self.settings),
            "token": secrets.token_hex(32),
            "options": {k: options[k] for k in WORKER_OPTIONS if options.get(k) is not None},
        }
        placement: dict[str, Any] = {"num_cpus": res.cpus, "num_gpus": res.gpus}
        if res.memory_gib:
            placement["memory"] = int(res.memory_gib * (1 << 30))
        if res.resources:
            placement["resources"] = dict(res.resources)
        ray.remote(InstanceActor).options(
            name=actor_name(instance_id),
            namespace=NAMESPACE,
            lifetime="detached",
            max_restarts=0,
            max_concurrency=2,  # stop() and info() answer while a long call runs
            scheduling_strategy="SPREAD",
            **placement,
        ).remote(instance_id, spec)
        return Handle(None, time.time())  # no local pid: the process runs on some node

    def wait_ready(self, instance_id: str, address: str, log_path: Path, timeout: float = READY_TIMEOUT_S) -> str:
        ray = require_ray()
        actor = self._actor(instance_id)
        if actor is None:
            raise ServiceUnavailableError(f"instance {instance_id} is gone from the cluster")
        try:
            addr = str(ray.get(actor.address.remote(), timeout=timeout))
        except ray.exceptions.GetTimeoutError:
            self._kill(instance_id)
            raise ServiceUnavailableError(
                f"model worker on the cluster was not placed and ready within {timeout:g} s: no node had its "
                "InstanceType's resources free, or loading the model hung"
            ) from None
        except ray.exceptions.RayActorError as err:
            raise ServiceUnavailableError(f"model worker on the cluster failed: {failure_line(err)}") from None
        deadline = time.monotonic() + 10.0
        while not wire.ping(addr):  # reachable from this server, token accepted
            if time.monotonic() > deadline:
                self._kill(instance_id)
                raise ServiceUnavailableError(
                    f"model worker on the cluster listens at {addr.split('@')[-1]} but this server cannot reach it"
                )
            time.sleep(0.1)
        return addr

    def instance_alive(self, instance_id: str, handle: Handle) -> bool:
        return actor_name(instance_id) in self._live()

    def stop_instance(self, instance_id: str, handle: Handle) -> None:
        ray = require_ray()
        actor = self._actor(instance_id)
        if actor is None:
            return
        with contextlib.suppress(ray.exceptions.RayError):
            ray.get(actor.stop.remote(), timeout=STOP_TIMEOUT_S)
        self._kill(instance_id)

    # -- helpers ----------------------------------------------------------------------------------------
    def _actor(self, instance_id: str) -> Any:
        try:
            return require_ray().get_actor(actor_name(instance_id), namespace=NAMESPACE)
        except ValueError:
            return None

    def _kill(self, instance_id: str, timeout: float = 10.0) -> None:
        """Kill the named actor (no graceful stop) and wait until its name is free for a replacement."""
        ray = require_ray()
        actor = self._actor(instance_id)
        if actor is None:
            return
        with contextlib.suppress(ray.exceptions.RayError, ValueError):
            ray.kill(actor, no_restart=True)
        deadline = time.monotonic() + timeout
        while self._actor(instance_id) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        self._forget_live()

    def _live(self) -> set[str]:
        cache = getattr(self, "_live_cache", None)
        if cache is not None and time.monotonic() - cache[0] < LIVE_TTL_S:
            return cache[1]
        with _live_lock:
            names = {
                a["name"] if isinstance(a, dict) else a
                for a in require_ray().util.list_named_actors(all_namespaces=False)
            }
            self._live_cache = (time.monotonic(), names)
        return names

    def _forget_live(self) -> None:
        self._live_cache = None


_live_lock = threading.Lock()


def _check_fits(ray: Any, instance_type: str, res: InstanceResources) -> None:
    """Refuse at once an InstanceType that no live node could hold even when idle (Ray would wait forever)."""
    need = res.bundle()
    for node in ray.nodes():
        if node.get("Alive") and all(node.get("Resources", {}).get(k, 0.0) >= v for k, v in need.items()):
            return
    shown = ", ".join(f"{k} {v:g}" for k, v in need.items() if k != "memory")
    raise ValidationError(
        f"InstanceType {instance_type!r} needs {shown}"
        + (f", {res.memory_gib:g} GiB memory" if res.memory_gib else "")
        + ": no node of the Ray cluster has that much (edit instance_types.toml or add a larger node)"
    )


def failure_line(err: BaseException) -> str:
    """The last ``SomeError: message`` line of a Ray error (the model worker's own reason), else its first."""
    text = str(err)
    found = re.findall(r"^\s*(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.+)$", text, flags=re.M)
    if found:
        kind, message = found[-1]
        return f"{kind}: {message.strip()}"[:400]
    return (text.strip().splitlines() or [type(err).__name__])[0][:400]
