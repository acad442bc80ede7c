"""`tailor db`: the metadata database's schema (SQLite in the home, or the PostgreSQL of database_url)."""

from __future__ import annotations

import json

import click

from tailor.cli.root import json_option, settings_of


@click.group("db")
def db_group() -> None:
    """The metadata database: its schema revision and upgrades."""


@db_group.command("upgrade")
@click.pass_context
def upgrade(ctx: click.Context) -> None:
    """Upgrade the database's schema to this Tailor's (in place; a no-op when it is current).

    On PostgreSQL shared by several servers: back it up, run this once from any machine, then restart the
    servers with the new Tailor (a server refuses to start on a database older than itself)."""
    from tailor import migrations
    from tailor.db import Database

    db = Database(settings_of(ctx))
    try:
        before, after = migrations.upgrade(db)
    finally:
        db.dispose()
    if before == after:
        click.echo(f"database already at revision {after} (current)")
    else:
        click.echo(f"database upgraded: {before or 'unversioned'} -> {after}")


@db_group.command("current")
@json_option
@click.pass_context
def current(ctx: click.Context, as_json: bool) -> None:
    """Show the database's schema revision, this Tailor's, and the servers sharing it (PostgreSQL)."""
    from tailor import migrations
    from tailor.db import Database, normalize_url
    from tailor.membership import Membership, clustered

    settings = settings_of(ctx)
    db = Database(settings)
    try:
        found = migrations.current(db)
        servers = Membership(settings, db).members() if clustered(db) and found == migrations.HEAD else []
    finally:
        db.dispose()
    from sqlalchemy.engine import make_url

    out = {
        "Database": make_url(normalize_url(settings.db_url)).render_as_string(hide_password=True),
        "Revision": found,
        "Head": migrations.HEAD,
        "Current": found == migrations.HEAD,
        "Servers": servers,
    }
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    if out["Current"]:
        state = "current"
    elif found is None:
        state = f"not versioned yet: the first start or `tailor db upgrade` brings it to {migrations.HEAD}"
    else:
        state = f"behind: run `tailor db upgrade` to reach {migrations.HEAD}"
    click.echo(f"{out['Database']}: revision {found or 'none'} ({state})")
    for s in servers:
        click.echo(
            f"  server {s['id'][:8]} on {s['host']} pid {s['pid']} {s['url'] or '(in-process)'}, "
            f"heartbeat {s['heartbeat_age_s']} s ago"
        )


commands: list[click.Command] = [db_group]
