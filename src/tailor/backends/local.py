"""Model worker processes: launch, wait for /ping, stop gracefully, check liveness.

A worker is a child of the Tailor process that launched it (its "owner") and exits when the owner does (it
watches its parent), so no model server outlives Tailor; the next Tailor server relaunches InService endpoints.
Sockets live in a private 0700 directory under the system temp dir: Unix socket paths are limited to 108
bytes, which a deep TAILOR_HOME could exceed, and the directory's mode keeps other users off the sockets.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from tailor.errors import ServiceUnavailableError
from tailor.serving import wire

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0


def socket_dir() -> Path:
    d = Path(tempfile.gettempdir()) / f"tailor-{os.getuid()}"
    d.mkdir(mode=0o700, exist_ok=True)
    if d.stat().st_uid != os.getuid() or d.stat().st_mode & 0o077:
        os.chmod(d, 0o700)
    return d


def launch(
    model_dir: str,
    socket_path: str,
    log_path: Path,
    *,
    max_batch_size: int | None = None,
    max_delay_ms: float | None = None,
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "tailor.serving.worker", model_dir, "--socket", socket_path]
    cmd += ["--owner-pid", str(os.getpid())]
    if max_batch_size is not None:
        cmd += ["--max-batch-size", str(max_batch_size)]
    if max_delay_ms is not None:
        cmd += ["--max-delay-ms", str(max_delay_ms)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads collapse on a busy 2-core box
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env
        )


def ping(socket_path: str, timeout: float = 2.0) -> bool:
    """The container's /ping over the worker socket (a blocking one-shot connection)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(socket_path)
            s.sendall(wire.pack_request(1, wire.OP_PING, "", "", b""))
            head = b""
            while len(head) < wire.RESP.size:
                chunk = s.recv(wire.RESP.size - len(head))
                if not chunk:
                    return False
                head += chunk
            _, _, status, _ = wire.RESP.unpack(head)
            return status == 200
    except OSError:
        return False


def stats(socket_path: str, timeout: float = 1.0) -> dict | None:
    """The worker's batcher counters (realised batch sizes, queue, refusals) over its socket; None if gone."""
    import json

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(socket_path)
            s.sendall(wire.pack_request(1, wire.OP_STATS, "", "", b""))
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return None
                data += chunk
                if len(data) >= wire.RESP.size:
                    body_len, _, status, ct_len = wire.RESP.unpack(data[: wire.RESP.size])
                    if len(data) >= wire.RESP.size + ct_len + body_len:
                        return json.loads(data[wire.RESP.size + ct_len :]) if status == 200 else None
    except (OSError, ValueError):
        return None


def wait_ready(
    proc: subprocess.Popen[bytes], socket_path: str, log_path: Path, timeout: float = READY_TIMEOUT_S
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceUnavailableError(f"model worker exited with code {proc.returncode}: {log_tail(log_path)}")
        if os.path.exists(socket_path) and ping(socket_path):
            return
        time.sleep(0.05)
    stop(proc.pid, None)
    raise ServiceUnavailableError(f"model worker did not answer /ping within {timeout:g} s: {log_tail(log_path)}")


def log_tail(path: Path, limit: int = 400) -> str:
    try:
        text = path.read_bytes()[-4096:].decode("utf-8", "replace").strip()
    except OSError:
        return "(no log)"
    lines = [line for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else "(empty log)")[-limit:]


def start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def alive(pid: int | None, started: float | None) -> bool:
    """True when ``pid`` runs and is the same process (its start time matches; PIDs get recycled)."""
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
    """SIGTERM (the worker finishes in-flight requests), then SIGKILL after ``timeout``."""
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
