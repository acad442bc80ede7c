"""The `tailor` command. Errors are translated to one line and an exit code here, and only here."""

from __future__ import annotations

import importlib
import sys

import click

from tailor.errors import TailorError
from tailor.settings import Settings, load_settings

# Each module defines `commands`: a list of click commands/groups added to the top level. Modules import heavy
# libraries (torch, onnxruntime) inside their commands so `tailor --help` stays fast.
COMMAND_MODULES = (
    "data",
    "train",
    "jobs",
    "models",
    "endpoints",
    "keys",
    "server",
    "demo",
)


class _Root(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(super().list_commands(ctx))


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--home", type=click.Path(file_okay=False), help="Tailor home (default $TAILOR_HOME or ~/.tailor).")
@click.version_option(package_name="tailor")
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """Tailor: classify your own images on your own machines."""
    ctx.obj = load_settings(home=home)


def settings_of(ctx: click.Context) -> Settings:
    return ctx.find_root().obj


@cli.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def config_cmd(ctx: click.Context, as_json: bool) -> None:
    """Show the resolved settings (defaults < config.toml < TAILOR_* env < flags)."""
    import json

    values = settings_of(ctx).model_dump(mode="json")
    for secret in [k for k in values if "secret" in k]:
        values[secret] = "***" if values[secret] else None
    if as_json:
        click.echo(json.dumps(values, indent=2))
        return
    for key, value in values.items():
        click.echo(f"{key:22} {value}")


for _name in COMMAND_MODULES:
    _mod = importlib.import_module(f"tailor.cli.{_name}")
    for _cmd in getattr(_mod, "commands", []):
        cli.add_command(_cmd)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="tailor", standalone_mode=False)
    except TailorError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(0)


if __name__ == "__main__":
    main()
