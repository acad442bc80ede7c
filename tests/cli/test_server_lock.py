"""`tailor server`: one server per home. A second one on the same home refuses at once with one line naming the
running server's pid and URL; once the first stops, the home is free again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tailor.settings import Settings
from tests.api.conftest import _free_port, start_server, stop_server


def second_server(settings: Settings, port: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TAILOR_HOME": str(settings.home)}
    cmd = [sys.executable, "-m", "tailor.cli.main", "server", "--port", str(port), "--log-level", "warning"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_a_second_server_on_the_same_home_refuses_with_the_first_ones_pid_and_port(
    settings: Settings, tmp_path: Path
) -> None:
    first = start_server(settings, tmp_path / "first.log")
    try:
        t0 = time.monotonic()
        second = second_server(settings, _free_port())
        assert second.returncode != 0, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr
        assert f"pid {first.proc.pid}" in lines[0] and first.url in lines[0], lines[0]
        assert time.monotonic() - t0 < 30  # refused before loading the app (no wait on a port or a timeout)
        assert (settings.home / "server.lock").stat().st_mode & 0o077 == 0
    finally:
        stop_server(first)
    again = start_server(settings, tmp_path / "again.log")  # the lock went with the first server's process
    stop_server(again)
