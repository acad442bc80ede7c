"""`tailor server`: run the HTTP API (FastAPI on uvicorn), bound to 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import click

from tailor.cli.root import settings_of
from tailor.errors import ConflictError, ValidationError

if TYPE_CHECKING:
    from tailor.settings import Settings

LOCK_NAME = "server.lock"


@click.group("server", invoke_without_command=True)
@click.option("--host", default=None, help="Bind address (default: settings.host, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: settings.port, 8023).")
@click.option("--log-level", default="info", show_default=True)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="One log line per HTTP request (off by default: it costs CPU on the invocation hot path).",
)
@click.option(
    "--backend",
    type=click.Choice(["local", "ray"]),
    default=None,
    help="Where jobs and endpoint workers run (default: settings.backend, local).",
)
@click.option(
    "--ray-address", default=None, help='The Ray cluster for --backend ray ("auto", HOST:6379, ray://HOST:10001).'
)
@click.pass_context
def server(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    log_level: str,
    access_log: bool,
    backend: str | None,
    ray_address: str | None,
) -> None:
    """Run the Tailor server (subcommands manage it)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from tailor.api.app import create_app

    flags = {"host": host, "port": port, "backend": backend, "ray_address": ray_address}
    settings = settings_of(ctx).model_copy(update={k: v for k, v in flags.items() if v is not None})
    if settings.backend == "ray":  # a missing extra or address is one line now, not a failed lifespan later
        from tailor.backends import ray_cluster

        ray_cluster.connect(settings.ray_address)
    lock = hold_server_lock(settings)  # held (open) until this process exits
    _check_database(settings)
    click.echo(f"Tailor server on http://{settings.host}:{settings.port} (home {settings.home})", err=True)
    try:
        uvicorn.run(
            create_app(settings), host=settings.host, port=settings.port, log_level=log_level, access_log=access_log
        )
    finally:
        os.close(lock)


def _check_database(settings: Settings) -> None:
    """The database answers and its schema suits this Tailor (a fresh one is created), before the app starts:
    a refusal ("run `tailor db upgrade`", a missing driver) is one line here, not an ASGI start-up traceback."""
    from tailor import migrations
    from tailor.db import Database

    db = Database(settings)
    try:
        migrations.prepare(db)
    finally:
        db.dispose()


def hold_server_lock(settings: Settings) -> int:
    """One server per home: an exclusive ``flock`` on ``home/server.lock``, held while the server runs.

    Two servers on one home would both supervise the same endpoints' workers and run the same queued jobs
    (each thinks it is the owner). The kernel drops the lock when the process ends, however it ends, so a
    crashed server never blocks the next one. The file records who holds it, for the refusal message.
    """
    import fcntl

    home = settings.home
    try:
        home.mkdir(mode=0o700, exist_ok=True)  # at most the last level, as every other command
        fd = os.open(home / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as err:
        raise ValidationError(f"cannot use Tailor home {home}: {err.strerror or err}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = _holder(os.pread(fd, 512, 0))
        os.close(fd)
        raise ConflictError(
            f"another Tailor server ({holder}) is running on home {home}: stop it first, "
            "or give this server its own TAILOR_HOME"
        ) from None
    me = json.dumps({"pid": os.getpid(), "url": f"http://{settings.host}:{settings.port}"}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, me + b"\n", 0)
    return fd


def _holder(raw: bytes) -> str:
    try:
        info = json.loads(raw)
        return f"pid {int(info['pid'])}, {info['url']}"
    except (ValueError, KeyError, TypeError):  # the holder is between taking the lock and writing its record
        return "pid unknown"


@server.command("wait")
@click.option("--url", help="Server URL (default: $TAILOR_URL, else http://<settings.host>:<settings.port>).")
@click.option("--timeout", type=click.FloatRange(0.1, 3600), default=60, show_default=True, help="Seconds.")
@click.pass_context
def wait(ctx: click.Context, url: str | None, timeout: float) -> None:
    """Wait until a server answers (after `tailor server &`): exit 0 once GET /healthz answers 200."""
    import time

    import httpx

    from tailor.errors import ServiceUnavailableError

    settings = settings_of(ctx)
    url = (url or settings.url or f"http://{settings.host}:{settings.port}").rstrip("/")
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                click.echo(f"Tailor server at {url} is up")
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise ServiceUnavailableError(f"no Tailor server answered at {url} within {timeout:g} s")
        time.sleep(0.2)


commands: list[click.Command] = [server]
