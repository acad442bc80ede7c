"""The `tailor` command. Errors are translated to one line and an exit code here, and only here."""

from __future__ import annotations

import sys

import click

from tailor.cli import data, db, demo, endpoints, jobs, keys, models, server, train, transform, tune
from tailor.cli.root import cli, settings_of
from tailor.errors import TailorError

# Each module defines `commands`: a list of click commands/groups added to the top level. Modules import heavy
# libraries (torch, onnxruntime) inside their commands so `tailor --help` stays fast.
COMMAND_MODULES = (data, train, jobs, models, endpoints, keys, server, demo, db, tune, transform)

for _module in COMMAND_MODULES:
    for _cmd in _module.commands:
        cli.add_command(_cmd)

__all__ = ["cli", "main", "settings_of"]


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
