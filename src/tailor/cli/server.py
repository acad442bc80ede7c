"""`tailor server`: run the HTTP API (FastAPI on uvicorn), bound to 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import click

from tailor.cli.root import settings_of


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
@click.pass_context
def server(ctx: click.Context, host: str | None, port: int | None, log_level: str, access_log: bool) -> None:
    """Run the Tailor server (subcommands manage it)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from tailor.api.app import create_app

    settings = settings_of(ctx).model_copy(
        update={k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    )
    click.echo(f"Tailor server on http://{settings.host}:{settings.port} (home {settings.home})", err=True)
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_level=log_level, access_log=access_log
    )


commands: list[click.Command] = [server]
