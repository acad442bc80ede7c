"""Shared fixtures. Every test gets its own TAILOR_HOME; nothing touches ~/.tailor or the network."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tailor.settings import Settings, load_settings
from tests import netns

# Before any fixture starts a server: the session gets a network namespace of its own (tests/netns.py).
IN_PRIVATE_NETNS = netns.enter()

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "tailor-home"
    monkeypatch.setenv("TAILOR_HOME", str(home))
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    # Most job tests run a tiny own-code command (tests/jobs/fake_algo.py) to take seconds, so own code is on
    # here; its default (off) and its permission have their own tests (tests/jobs/test_isolation.py,
    # tests/api/test_own_code.py).
    monkeypatch.setenv("TAILOR_ALLOW_OWN_CODE", "1")
    return home


@pytest.fixture
def settings(_isolated_home: Path) -> Settings:
    return load_settings(home=str(_isolated_home)).ensure_dirs()


@pytest.fixture(scope="session")
def dataset_mirror() -> str:
    """The dataset mirror the Makefile sets (file:// URL of ../shared/datasets)."""
    mirror = os.environ.get("TAILOR_DATASET_MIRROR") or SHARED_DATASETS.as_uri()
    assert mirror.startswith("file://") and Path(mirror[len("file://") :]).is_dir(), mirror
    return mirror


@pytest.fixture(scope="session")
def mxnet_python() -> str:
    """The MXNet 1.9.1 reference interpreter (built by `make mxnet`)."""
    exe = os.environ.get("TAILOR_MXNET_PYTHON") or str(REPO / ".venv-mxnet" / "bin" / "python")
    assert Path(exe).exists(), f"MXNet reference venv missing at {exe}: run `make mxnet`"
    return exe


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def moto(port: int | None = None) -> Iterator[str]:
    """A real S3-compatible HTTP server on loopback (moto's standalone server) while in the block; its URL."""
    import subprocess
    import time
    import urllib.request

    port = port or free_port()
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real S3-compatible HTTP server on loopback for the whole session; yields its endpoint URL."""
    with moto() as url:
        yield url


@pytest.fixture(scope="session")
def model_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real model artifact (tests/serving/artifacts.py), built once per session."""
    from tests.serving.artifacts import build_artifact

    return build_artifact(tmp_path_factory.mktemp("artifact") / "model.tar.gz")


@pytest.fixture
def s3_settings(settings: Settings, moto_server: str) -> Settings:
    """Settings whose s3:// URIs go to the moto server (a fresh bucket namespace per test is up to the test)."""
    return settings.model_copy(
        update={"s3_endpoint_url": moto_server, "s3_access_key_id": "testing", "s3_secret_access_key": "testing"}
    )


@pytest.fixture
def admin_credentials(settings: Settings):  # noqa: ANN201 - tailor.auth.keys.Credentials
    """An admin access key (policy * on *) written to the isolated home's credentials file (0600), which
    `tailor.Client`, the CLI and `Settings` of this home pick up: servers are closed by default."""
    from tailor.auth.keys import Credentials, init_admin

    new, _path = init_admin(settings)
    return Credentials(new.info.access_key_id, new.secret_access_key)


@contextmanager
def running_app(settings: Settings) -> Iterator[str]:
    """A real Tailor server (uvicorn, in a thread) for ``settings`` on a free loopback port; yields its URL."""
    import socket
    import threading
    import time

    import uvicorn

    from tailor.api.app import create_app

    # Bind first and hand uvicorn the bound socket: picking a free port and binding later races other tests.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "Tailor server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture
def api_server(settings: Settings, admin_credentials: object) -> Iterator[str]:
    """A real Tailor server (uvicorn) on a free loopback port; yields its base URL."""
    with running_app(settings) as url:
        yield url


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A real PostgreSQL 15 cluster on loopback for the session (tests/postgres.py); yields its base URL."""
    from tests.postgres import postgres_cluster

    with postgres_cluster() as url:
        yield url


@pytest.fixture
def pg_url(postgres: str) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    from tests.postgres import fresh_database

    return fresh_database(postgres)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The test's settings on each metadata database Tailor supports: SQLite in the home, and PostgreSQL."""
    if request.param == "sqlite":
        return settings
    return settings.model_copy(update={"database_url": request.getfixturevalue("pg_url")})
