"""`tailor deploy` / `tailor invoke` as a newcomer runs them: real processes, real stderr."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from tailor.settings import Settings
from tests.conftest import free_port


def tailor_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tailor.cli.main", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def healthz_server() -> Iterator[int]:
    """Something answering GET /healthz on a loopback port, as a running `tailor server` does."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_deploy_without_a_server_refuses_instead_of_claiming_in_service(settings: Settings) -> None:
    port = str(free_port())  # nothing listens there
    for args in (["deploy", "fmnist"], ["endpoints", "create", "fmnist", "--config", "fmnist"]):
        out = tailor_cli(*args, env={"TAILOR_PORT": port})
        assert out.returncode == 2, out.stderr
        line = out.stderr.strip()
        assert "\n" not in line and "InService" not in out.stdout + line
        assert "needs a running Tailor server" in line and "start `tailor server`" in line, line
        assert f"--url http://127.0.0.1:{port}" in line and "TAILOR_URL" in line


def test_deploy_without_url_names_the_server_that_answers(settings: Settings, healthz_server: int) -> None:
    out = tailor_cli("deploy", "fmnist", env={"TAILOR_PORT": str(healthz_server)})
    url = f"http://127.0.0.1:{healthz_server}"
    assert out.returncode == 2 and f"a Tailor server answers at {url}" in out.stderr
    assert f"export TAILOR_URL={url}" in out.stderr
