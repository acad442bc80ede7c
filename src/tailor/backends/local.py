"""The local backend: training jobs and endpoint instances as child processes of this Tailor process.

A training command runs in a new session (its own process group), so stop and timeouts reach every process it
started and never Tailor itself. A model worker (``python -m tailor.serving.worker``) is a child of the Tailor
process that launched it (its "owner") and exits when the owner does (it watches its parent), so no model
server outlives Tailor; the next Tailor server relaunches InService endpoints. Worker sockets live in a
private 0700 directory under the system temp dir: Unix socket paths are limited to 108 bytes, which a deep
TAILOR_HOME could exceed, and the directory's mode keeps other users off the sockets.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

from tailor.backends.base import Handle, TrainingInputs
from tailor.errors import ServiceUnavailableError
from tailor.serving import wire

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
# Two OpenMP threads spinning collapse ~4x when the other core is busy (docs/MEASURED.md); children that do
# not say otherwise wait passively.
_PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE"}


class LocalBackend:
    """``tailor.backends.Backend`` on this machine."""

    name = "local"
    remote = False
    detached_instances = False  # workers watch their owner and exit with it

    def __init__(self) -> None:
        self._children: dict[str, subprocess.Popen[bytes]] = {}  # instance id -> our child, to reap and poll

    # -- training jobs ----------------------------------------------------------------------------------
    def check_training(self, *, instance_type: str, instance_count: int, own_code: bool) -> None:
        return None  # every job runs here: InstanceCount processes on this machine

    def start_training(
        self, cmd: list[str], *, cwd: Path, env: Mapping[str, str], inputs: TrainingInputs | None = None
    ) -> tuple[subprocess.Popen[bytes], int]:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env={**_PASSIVE, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        return proc, os.getpgid(proc.pid)

    def status_change(self, line: str) -> tuple[str, str] | None:
        return None

    def signal_group(self, group: int | None, sig: int = signal.SIGKILL) -> None:
        kill_group(group, sig)

    def end_training(self, pid: int | None, started: float | None, group: int | None) -> None:
        if pid is not None and same_process(pid, started):
            kill_group(group)
            wait_gone(pid, 5.0)

    def same_process(self, pid: int | None, started: float | None) -> bool:
        return same_process(pid, started)

    def start_time(self, pid: int) -> float | None:
        return process_start_time(pid)

    def sampler(self, pid: int) -> ResourceSampler:
        return ResourceSampler(pid)

    # -- endpoint instances -----------------------------------------------------------------------------
    def instance_address(self, instance_id: str) -> str:
        return str(socket_dir() / f"{instance_id}.sock")

    def start_instance(
        self, instance_id: str, model_dir: str, address: str, log_path: Path, options: Mapping[str, Any]
    ) -> Handle:
        cmd = [sys.executable, "-m", "tailor.serving.worker", model_dir, "--socket", address]
        cmd += ["--owner-pid", str(os.getpid())]
        for flag in ("max_batch_size", "max_delay_ms", "max_image_pixels", "quantize", "threads"):
            if options.get(flag) is not None:
                cmd += [f"--{flag.replace('_', '-')}", str(options[flag])]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**_PASSIVE, **os.environ},
            )
        self._children[instance_id] = proc
        return Handle(proc.pid, process_start_time(proc.pid))

    def wait_ready(self, instance_id: str, address: str, log_path: Path, timeout: float = READY_TIMEOUT_S) -> None:
        proc = self._children[instance_id]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServiceUnavailableError(f"model worker exited with code {proc.returncode}: {log_tail(log_path)}")
            if os.path.exists(address) and wire.ping(address):
                return
            time.sleep(0.05)
        self.stop_instance(instance_id, Handle(proc.pid, None))
        raise ServiceUnavailableError(f"model worker did not answer /ping within {timeout:g} s: {log_tail(log_path)}")

    def instance_alive(self, instance_id: str, handle: Handle) -> bool:
        proc = self._children.get(instance_id)
        if proc is not None and proc.poll() is not None:
            return False
        return alive(handle.pid, handle.started)

    def exit_code(self, instance_id: str) -> int | None:
        """The exit status of an instance this process started and that has ended (negative: the signal
        that killed it); None while it runs or when it is not our child."""
        proc = self._children.get(instance_id)
        return None if proc is None else proc.poll()

    def stop_instance(self, instance_id: str, handle: Handle) -> None:
        stop(handle.pid, handle.started)
        proc = self._children.pop(instance_id, None)
        if proc is not None:
            proc.poll()


# -- processes -------------------------------------------------------------------------------------------


def socket_dir() -> Path:
    d = Path(tempfile.gettempdir()) / f"tailor-{os.getuid()}"
    d.mkdir(mode=0o700, exist_ok=True)
    if d.stat().st_uid != os.getuid() or d.stat().st_mode & 0o077:
        os.chmod(d, 0o700)
    return d


def log_tail(path: Path, limit: int = 400) -> str:
    try:
        text = path.read_bytes()[-4096:].decode("utf-8", "replace").strip()
    except OSError:
        return "(no log)"
    lines = [line for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else "(empty log)")[-limit:]


def process_start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def same_process(pid: int | None, start_time: float | None) -> bool:
    """True when ``pid`` is still the process that started at ``start_time`` (not a recycled PID)."""
    if not pid or start_time is None:
        return False
    now_start = process_start_time(pid)
    return now_start is not None and abs(now_start - start_time) < 0.01


def alive(pid: int | None, started: float | None) -> bool:
    """True when ``pid`` runs, is no zombie and is the same process (its start time matches, when known)."""
    if not pid:
        return False
    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(p.create_time() - started) < 1.0
    except psutil.Error:
        return False


def stop(pid: int | None, started: float | None, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM (a worker finishes in-flight requests), then SIGKILL after ``timeout``."""
    if not alive(pid, started):
        return
    assert pid is not None
    try:
        os.kill(pid, signal.SIGTERM)
        proc = psutil.Process(pid)
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.Error, OSError):
            os.kill(pid, signal.SIGKILL)
            psutil.Process(pid).wait(2)
    except (psutil.Error, OSError):
        pass
    with contextlib.suppress(psutil.Error, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap our own child


def kill_group(pgid: int | None, sig: int = signal.SIGKILL) -> None:
    if not pgid or pgid == os.getpgrp():
        return  # never signal our own group
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def wait_gone(pid: int, timeout: float) -> None:
    """Wait until ``pid`` has exited; a zombie (exited, not yet reaped by its parent) counts as gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)


class ResourceSampler:
    """CPU % and RSS summed over a process tree (psutil), GPU utilisation and memory via nvidia-smi."""

    def __init__(self, pid: int) -> None:
        self._root = pid
        self._procs: dict[int, psutil.Process] = {}
        self._nvidia_smi = shutil.which("nvidia-smi")

    def sample(self) -> dict[str, Any] | None:
        try:
            root = psutil.Process(self._root)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return None
        cpu, rss, pids = 0.0, 0, set()
        for proc in tree:
            # cpu_percent needs a previous call on the same Process object; keep them between samples.
            known = self._procs.setdefault(proc.pid, proc)
            try:
                cpu += known.cpu_percent(None)
                rss += known.memory_info().rss
                pids.add(proc.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        self._procs = {p: v for p, v in self._procs.items() if p in pids}
        gpu_util, gpu_mem = self._gpu(pids)
        return {"cpu_percent": cpu, "rss_bytes": rss, "gpu_utilization": gpu_util, "gpu_memory_bytes": gpu_mem}

    def _gpu(self, pids: set[int]) -> tuple[float | None, int | None]:
        if not self._nvidia_smi:
            return None, None
        try:
            apps = _query(self._nvidia_smi, "--query-compute-apps=pid,used_memory")
            util = _query(self._nvidia_smi, "--query-gpu=utilization.gpu")
        except (OSError, subprocess.SubprocessError):
            return None, None
        mem = 0
        for line in apps.splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 2 and parts[0].isdigit() and int(parts[0]) in pids and parts[1].isdigit():
                mem += int(parts[1]) << 20  # MiB
        utils = [float(u) for u in util.split() if u.replace(".", "", 1).isdigit()]
        return (sum(utils) / len(utils) if utils else None), mem


def _query(nvidia_smi: str, query: str) -> str:
    return subprocess.run(
        [nvidia_smi, query, "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5, check=True
    ).stdout
