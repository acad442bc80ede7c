"""`tailor deploy` / `tailor invoke` as a newcomer runs them: real processes, real stderr."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tailor import Client
from tailor.settings import Settings
from tailor.storage import Storage
from tests.api.conftest import ServerProcess, server, server_factory  # noqa: F401 - fixtures
from tests.conftest import free_port
from tests.serving.artifacts import png_bytes

pytestmark = pytest.mark.slow  # model workers


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


def test_in_process_invoke_prints_the_answer_and_exits_cleanly(
    settings: Settings,
    server: ServerProcess,  # noqa: F811 - the fixture imported above
    model_tar: Path,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """The endpoint's workers belong to a running server; `tailor invoke` without --url connects to them from
    its own event loop. That loop used to close under a pending reader task: "Task was destroyed but it is
    pending!" and "Event loop is closed" on stderr after the answer."""
    Storage(settings).upload_file(model_tar, "s3://models/fm/model.tar.gz")
    variant = {"VariantName": "AllTraffic", "ModelName": "fm", "InitialInstanceCount": 1, "InitialVariantWeight": 1.0}
    with Client(url=server.url) as client:
        client.create_model(ModelName="fm", PrimaryContainer={"ModelDataUrl": "s3://models/fm/model.tar.gz"})
        client.create_endpoint_config(EndpointConfigName="fm", ProductionVariants=[variant])
        client.create_endpoint(EndpointName="fm", EndpointConfigName="fm")
        assert client.wait_endpoint("fm", timeout=120)["EndpointStatus"] == "InService"
    images = []
    for i in range(2):
        images.append(tmp_path / f"shoe{i}.png")
        images[-1].write_bytes(png_bytes(i))
    out = tailor_cli("invoke", "fm", *map(str, images), "--top-k", "2", env={"TAILOR_HOME": str(settings.home)})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 6 and lines[0] == f"{images[0]}:" and all("(0." in line for line in lines[1:3])
    assert out.stderr == "", out.stderr
