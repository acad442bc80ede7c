"""Training jobs on Ray (the training half of ``RayBackend``).

A job on the ray backend is one local process, its driver (``python -m tailor.backends.ray_driver <job dir>``,
see ``ray_driver`` for what it does on the cluster), started in its own process group like the algorithm on the
local backend. The job runner therefore works unchanged: it reads the driver's stdout as the job's log (metric
lines included), signals its group on stop and MaxRuntimeInSeconds (the driver forwards SIGTERM to every
instance and kills them after the grace), and uploads the model the driver copied into the job dir. What the
runner adds for a remote backend (``remote = True``): it stages no channels itself (each node reads them from S3)
and passes ``TrainingInputs`` (channel URIs, checkpoint prefix, instance type and count), the only extension of
the backend protocol training needed, besides ``status_change`` (restarts as status transitions) and
``check_training`` (refusals at CreateTrainingJob).

Refused at CreateTrainingJob, with one line: an InstanceType the instance-type table does not know, a server
without ``s3_endpoint_url`` (its s3:// URIs are folders under its own home, which no other node can read), and
own training code (the nodes run the built-in algorithm only: own code is sandboxed or containerised on the
server's machine, which a Ray node does not offer).

Resource samples: each instance's actor samples its algorithm's process tree on its node (CPU %, RSS, GPU, as the
local backend samples one tree); the driver sums the running instances' figures into ``instance-resources.json``
in the job dir every second, and the runner's sampler reads that file (nothing when it is older than
``STALE_S``: no instance is running, e.g. while a restart waits for resources).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tailor.backends.base import TrainingInputs
from tailor.backends.instance_types import InstanceResources, resources_for
from tailor.backends.local import kill_group, process_start_time, same_process, wait_gone
from tailor.backends.ray_worker import SAMPLE_S, SAMPLES_FILE
from tailor.errors import ValidationError
from tailor.settings import Settings

_STATUS = re.compile(r"^\[tailor-ray\] status (Restarting|Training): (.+)$")
_DRIVER_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}  # OpenMP threads wait passively (docs/MEASURED.md)
STALE_S = 5 * SAMPLE_S  # the driver writes the figures every SAMPLE_S while an instance runs


class RayTraining:
    settings: Settings
    instance_types: dict[str, InstanceResources]
    driver_dirs: dict[int, Path]  # a running driver's pid -> its job dir (where it writes the instances' figures)
    remote = True

    def check_training(self, *, instance_type: str, instance_count: int, own_code: bool) -> None:
        if not self.settings.s3_endpoint_url:
            raise ValidationError(
                "the ray backend needs S3 (s3_endpoint_url / TAILOR_S3_ENDPOINT_URL): each node reads the job's "
                "channels from it, and local buckets under the server's home are not visible to other nodes"
            )
        if own_code:
            raise ValidationError(
                "own training code does not run on the ray backend (the nodes run the built-in algorithm only): "
                "use TrainingImage tailor/image-classification, or a server with the local backend"
            )
        resources_for(self.instance_types, instance_type)

    def start_training(
        self, cmd: list[str], *, cwd: Path, env: Mapping[str, str], inputs: TrainingInputs | None = None
    ) -> tuple[subprocess.Popen[bytes], int]:
        if inputs is None:
            raise ValueError("the ray backend needs the job's TrainingInputs")
        desc = self.description(cmd, cwd, env, inputs)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tailor.backends.ray_driver", str(cwd)],
            cwd=cwd,
            # The driver is Tailor's own process (it joins the cluster as the server does); the instances get
            # only the job's environment, inside the description.
            env={**os.environ, **_DRIVER_ENV},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert proc.stdin is not None
        with proc.stdin:  # S3 keys travel on a pipe, never on a command line or on disk
            proc.stdin.write(json.dumps(desc).encode())
        self.driver_dirs[proc.pid] = cwd
        return proc, os.getpgid(proc.pid)

    def description(self, cmd: list[str], cwd: Path, env: Mapping[str, str], inputs: TrainingInputs) -> dict[str, Any]:
        """Everything the driver and its instances need, as JSON (the nodes never read the server's home)."""
        s = self.settings
        config = cwd / "input" / "config"
        return {
            "ray_address": s.ray_address,
            "job_name": inputs.job_name,
            "server_dir": str(cwd),
            "server_home": str(s.home),
            "server_python": sys.executable,
            "cmd": list(cmd),
            "env": dict(env),
            "channels": inputs.channels,
            "checkpoint_uri": inputs.checkpoint_uri,
            "instance_type": inputs.instance_type,
            "instance_count": inputs.instance_count,
            "bundle": resources_for(self.instance_types, inputs.instance_type).bundle(),
            "config": {p.name: p.read_text() for p in sorted(config.glob("*.json"))},
            "storage": {
                "s3_endpoint_url": s.s3_endpoint_url,
                "s3_access_key_id": s.s3_access_key_id,
                "s3_secret_access_key": s.s3_secret_access_key,
                "s3_region": s.s3_region,
            },
            "grace_s": max(0.0, s.job_stop_grace_seconds - 1.0),  # end before the runner's SIGKILL
            "resource_wait_s": s.ray_resource_wait_seconds,
            "max_restarts": s.ray_max_restarts,
        }

    def status_change(self, line: str) -> tuple[str, str] | None:
        m = _STATUS.match(line)
        return (m.group(1), m.group(2)) if m else None

    # The driver is a local process: signalling, recognising and ending it is the local backend's work.
    def signal_group(self, group: int | None, sig: int) -> None:
        kill_group(group, sig)

    def end_training(self, pid: int | None, started: float | None, group: int | None) -> None:
        if pid is not None and same_process(pid, started):
            kill_group(group)  # Ray ends the actors and placement group of a driver that died
            wait_gone(pid, 5.0)

    def same_process(self, pid: int | None, started: float | None) -> bool:
        return same_process(pid, started)

    def start_time(self, pid: int) -> float | None:
        return process_start_time(pid)

    def sampler(self, pid: int) -> Any:
        return _InstanceSamples(self.driver_dirs.pop(pid, None))


class _InstanceSamples:
    """The instances' summed figures the job's driver wrote, for the runner's resource samples."""

    def __init__(self, job_dir: Path | None) -> None:
        self.path = None if job_dir is None else job_dir / SAMPLES_FILE

    def sample(self) -> dict[str, Any] | None:
        if self.path is None:
            return None
        try:
            figures = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(figures, dict) or time.time() - float(figures.get("time", 0)) > STALE_S:
            return None
        keys = ("cpu_percent", "rss_bytes", "gpu_utilization", "gpu_memory_bytes")
        return {k: figures.get(k) for k in keys}
