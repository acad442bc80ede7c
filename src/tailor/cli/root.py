"""The root of the `tailor` command: the group every command module adds itself to, and its settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from tailor.settings import Settings

# Options most commands share.
url_option = click.option(
    "--url", help="Tailor server URL (default: $TAILOR_URL, else this machine's home in-process)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")


class _Root(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(super().list_commands(ctx))


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--home", type=click.Path(file_okay=False), help="Tailor home (default $TAILOR_HOME or ~/.tailor).")
@click.version_option(package_name="tailor")
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """Tailor: classify your own images on your own machines."""
    ctx.obj = _Unloaded(home)


@dataclass(frozen=True)
class _Unloaded:
    """The root's settings before a command asks for them: pydantic-settings is ~0.3 s of a ~0.6 s start, which
    commands that never read settings (``tailor data …``, every ``--help``) skip."""

    home: str | None


def settings_of(ctx: click.Context) -> Settings:
    """The resolved settings, loaded on the first call (config.toml and TAILOR_* errors surface there)."""
    root = ctx.find_root()
    if isinstance(root.obj, _Unloaded):
        from tailor.settings import load_settings

        root.obj = load_settings(home=root.obj.home)
    return root.obj


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
