"""A real Tailor server (`tailor server`) on a free loopback port, as a subprocess of the test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tailor.settings import Settings


@dataclass
class ServerProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(settings: Settings, log: Path, port: int | None = None, timeout: float = 30.0) -> ServerProcess:
    port = port or _free_port()
    env = {
        **os.environ,
        "TAILOR_HOME": str(settings.home),
        "TAILOR_JOB_STOP_GRACE_SECONDS": "1",
        "TAILOR_JOB_SAMPLE_INTERVAL_SECONDS": "0.5",
    }
    cmd = [sys.executable, "-m", "tailor.cli.main", "server", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return ServerProcess(url, proc, log)
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"server not up within {timeout} s: {log.read_text()[-2000:]}")


def stop_server(server: ServerProcess) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


@pytest.fixture
def server_factory(
    settings: Settings, tmp_path: Path, admin_credentials: object
) -> Iterator[Callable[..., ServerProcess]]:
    """Servers are closed by default: the admin key in this home's credentials file signs the SDK's requests."""
    started: list[ServerProcess] = []

    def factory(port: int | None = None) -> ServerProcess:
        server = start_server(settings, tmp_path / "server.log", port)
        started.append(server)
        return server

    yield factory
    for server in started:
        stop_server(server)


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory()
