"""`tailor keys` (access keys, policies, bearer tokens) and `tailor server init` (the first admin key).

These act on the server's home directly (whoever can read that directory administers the server); secrets
are printed once, at creation, and never again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tailor.cli.root import settings_of
from tailor.cli.server import server


def _store(ctx: click.Context):  # noqa: ANN202 - KeyStore, imported lazily to keep `tailor --help` fast
    from tailor.auth.keys import KeyStore

    return KeyStore(settings_of(ctx).ensure_dirs())


def _policy_text(path: str | None) -> str | None:
    return Path(path).read_text() if path else None


@click.group("keys")
def keys() -> None:
    """Access keys of named principals and their IAM-style policies."""


@keys.command("create")
@click.option("--name", required=True, help="Principal name (letters, digits, +=,.@_-).")
@click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False), help="IAM policy JSON file.")
@click.option("--admin", is_flag=True, help="Grant everything (Action * on Resource *).")
@click.pass_context
def create(ctx: click.Context, name: str, policy_file: str | None, admin: bool) -> None:
    """Create a key; without --policy or --admin it may do nothing until a policy is set."""
    new = _store(ctx).create(name, _policy_text(policy_file), admin=admin)
    click.echo(json.dumps({**new.info.to_dict(), "SecretAccessKey": new.secret_access_key}, indent=2))
    click.echo("The secret is shown only now: store it (e.g. in a 0600 credentials file).", err=True)


@keys.command("list")
@click.pass_context
def list_keys(ctx: click.Context) -> None:
    """List keys (never their secrets)."""
    rows = _store(ctx).list()
    click.echo(f"{'ACCESS KEY ID':<22}{'NAME':<24}{'STATUS':<10}CREATED")
    for k in rows:
        status = "Active" if k.enabled else "Inactive"
        click.echo(f"{k.access_key_id:<22}{k.name:<24}{status:<10}{k.created_at:%Y-%m-%d %H:%M}")


@keys.command("show")
@click.argument("key")
@click.pass_context
def show(ctx: click.Context, key: str) -> None:
    """Show one key (by id or name) with its policy."""
    click.echo(json.dumps(_store(ctx).get(key).to_dict(), indent=2))


def _switch(verb: str, enabled: bool, doc: str) -> None:
    """``keys enable KEY`` / ``keys disable KEY``."""

    @keys.command(verb, help=doc)
    @click.argument("key")
    @click.pass_context
    def command(ctx: click.Context, key: str) -> None:
        info = _store(ctx).set_enabled(key, enabled)
        click.echo(f"{verb}d {info.access_key_id} ({info.name})")


_switch(
    "disable", False, "Disable a key (by id or name): its signatures stop working and its tokens are revoked, at once."
)
_switch("enable", True, "Enable a disabled key again (the tokens revoked when it was disabled stay revoked).")


@keys.command("delete")
@click.argument("key")
@click.pass_context
def delete(ctx: click.Context, key: str) -> None:
    """Delete a key (by id or name) and its tokens."""
    _store(ctx).delete(key)
    click.echo(f"deleted {key}")


@keys.command("set-policy")
@click.argument("key")
@click.argument("policy_file", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def set_policy(ctx: click.Context, key: str, policy_file: str) -> None:
    """Replace a key's policy with an IAM policy JSON file."""
    info = _store(ctx).set_policy(key, _policy_text(policy_file))
    click.echo(f"policy of {info.access_key_id} ({info.name}) replaced")


@keys.command("token")
@click.argument("key")
@click.option("--ttl", type=int, default=None, help="Lifetime in seconds (default settings.token_ttl_seconds).")
@click.option("--json", "as_json", is_flag=True, help='Print {"Token": …, "Expiration": …} instead of the token.')
@click.pass_context
def token(ctx: click.Context, key: str, ttl: int | None, as_json: bool) -> None:
    """Issue a bearer token for a key (for curl and the web console).

    Prints the bare token, so `curl -H "Authorization: Bearer $(tailor keys token admin)"` works as written.
    """
    value, expires = _store(ctx).issue_token(key, ttl)
    if as_json:
        click.echo(json.dumps({"Token": value, "Expiration": expires.isoformat()}))
        return
    click.echo(value)
    if sys.stderr.isatty():  # a person reading it; scripts capturing $(…) get the token alone
        click.echo(f"expires {expires.isoformat()}", err=True)


@keys.command("revoke-tokens")
@click.argument("key")
@click.pass_context
def revoke_tokens(ctx: click.Context, key: str) -> None:
    """Revoke every bearer token of a key."""
    click.echo(f"revoked {_store(ctx).revoke_tokens(key)} token(s)")


@server.command("init")
@click.option("--name", default="admin", show_default=True, help="Name of the admin principal.")
@click.pass_context
def init(ctx: click.Context, name: str) -> None:
    """Create an admin access key and write it to the credentials file (mode 0600)."""
    from tailor.auth.keys import init_admin

    settings = settings_of(ctx).ensure_dirs()
    new, path = init_admin(settings, name)
    click.echo(f"admin key {new.info.access_key_id} ({name}) written to {path} [profile {settings.profile}]")
    click.echo(
        "Tailor's CLI and SDK use it from there; for boto3 set AWS_SHARED_CREDENTIALS_FILE to that path.", err=True
    )


commands: list[click.Command] = [keys]
