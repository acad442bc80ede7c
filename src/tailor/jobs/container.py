"""Own code in a container (``own_code_engine = "podman"`` or ``"docker"``), as SageMaker runs training images.

The container runs ``TrainingImage`` with the job dir mounted at ``/opt/ml`` (SageMaker's layout, so SM_* paths
read ``/opt/ml/...``), working directory ``/opt/ml``, no network unless ``own_code_network``, every capability
dropped, no-new-privileges, and — when the server is root — the job's own uid (as for local processes). The
environment is passed by name (``--env KEY``): values travel in the engine client's environment, never on a
command line other users can read. Without ``ContainerEntrypoint`` the image runs ``train`` as on SageMaker.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from pathlib import Path

from tailor.errors import ServiceUnavailableError

CONTAINER_ROOT = "/opt/ml"
_CHECK_TTL_S = 60.0  # an engine that answered is not asked again for a minute
_answered: dict[str, float] = {}


def container_name(job_name: str) -> str:
    return f"tailor-job-{job_name}"


def command(
    engine: str,
    *,
    job_name: str,
    image: str,
    entrypoint: list[str] | None,
    arguments: list[str] | None,
    job_dir: Path,
    env_keys: list[str],
    uid: int | None,
    network: bool,
) -> list[str]:
    """The ``<engine> run`` command line for one job."""
    cmd = [
        engine,
        "run",
        "--rm",
        "--name",
        container_name(job_name),
        "--network",
        "bridge" if network else "none",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--volume",
        f"{job_dir}:{CONTAINER_ROOT}",
        "--workdir",
        CONTAINER_ROOT,
    ]
    if uid is not None:
        cmd += ["--user", f"{uid}:{uid}"]
    for key in sorted(env_keys):
        cmd += ["--env", key]
    if entrypoint:
        return [*cmd, "--entrypoint", entrypoint[0], image, *entrypoint[1:], *(arguments or [])]
    return [*cmd, image, *(arguments or ["train"])]


def require_engine(engine: str) -> str:
    """The engine's executable, after checking that an engine answers (``<engine> info``); else one line."""
    exe = shutil.which(engine)
    if exe is None:
        raise ServiceUnavailableError(f"own_code_engine = {engine!r}, but no {engine} command is installed")
    if time.monotonic() - _answered.get(exe, -_CHECK_TTL_S) < _CHECK_TTL_S:
        return exe
    try:
        out = subprocess.run([exe, "info"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as err:
        raise ServiceUnavailableError(f"own_code_engine = {engine!r}, but `{engine} info` failed: {err}") from None
    if out.returncode != 0:
        lines = [ln.strip() for ln in out.stderr.splitlines() if ln.strip()]
        why = lines[0][:200] if lines else f"exit code {out.returncode}"
        raise ServiceUnavailableError(f"own_code_engine = {engine!r}, but no {engine} engine answers: {why}")
    _answered[exe] = time.monotonic()
    return exe


def remove(engine: str, job_name: str) -> None:
    """Remove the job's container if it outlived its client (a SIGKILLed ``run`` leaves it running)."""
    exe = shutil.which(engine)
    if exe is None:
        return
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run([exe, "rm", "-f", container_name(job_name)], capture_output=True, timeout=60)
