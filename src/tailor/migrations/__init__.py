"""The metadata database's schema, versioned with Alembic (scripts in ``versions/``, one per change).

``prepare(db)`` runs when a Tailor process opens its database and decides in one query in the common case
(the database is at ``HEAD``):

- an empty database is created at head (``create_all`` and a stamp: no script runs, start-up stays fast);
- a database made before migrations existed (tables, no ``alembic_version``) whose tables match the baseline
  is upgraded in place (SQLite) — its tables are today's, so nothing changes for the single-machine user;
- a database behind head: SQLite (one server per home) is upgraded in place; PostgreSQL, which several servers
  of possibly different versions share, is refused with one line — an operator runs ``tailor db upgrade``
  once, after a backup, and restarts the servers;
- a database ahead of head (written by a newer Tailor) is refused: this Tailor would not know its columns.

Everything runs in one transaction holding an advisory lock (PostgreSQL), so servers starting together on an
empty database create it once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Column, MetaData, String, Table, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError, ProgrammingError

from tailor.db import Base, Database
from tailor.errors import ConflictError, ServiceUnavailableError

BASELINE = "0001"
HEAD = "0005"
REVISIONS = ("0001", "0002", "0003", "0004", "0005")  # in order; tests check this matches versions/
UPGRADE_HINT = "run `tailor db upgrade`"
# What revisions after the baseline add: a database without alembic_version that lacks exactly these (or a
# part of them) was made by create_all before migrations existed.
ADDED_AFTER_BASELINE: dict[str, set[str] | None] = {
    "servers": None,  # the whole table
    "training_jobs": {"owner_server"},
    "hosting_endpoints": {"owner_server", "pending_op"},
}
_LOCK_ID = 7_726_352_113  # pg_advisory_xact_lock key: "tailor" migrations

_version_meta = MetaData()
_version_table = Table(
    "alembic_version", _version_meta, Column("version_num", String(32), primary_key=True, nullable=False)
)


def metadata() -> MetaData:
    """Every table of every domain (importing a store module declares its tables on ``Base``)."""
    import tailor.auth.keys
    import tailor.hosting.store
    import tailor.jobs.store
    import tailor.membership
    import tailor.transform.store
    import tailor.tuning.store  # noqa: F401

    return Base.metadata


def prepare(db: Database) -> str:
    """Bring the database to head where that is safe (see the module's docstring); the revision it is at."""
    with db.engine.connect() as conn:
        found = _version(conn)
    if found == HEAD:
        return HEAD
    with _locked(db) as conn:
        found = _version(conn)
        if found == HEAD:
            return HEAD
        if found is not None and found not in REVISIONS:
            raise ConflictError(_ahead(found))
        if found is None:
            state = _unversioned(conn)
            if state == "head":
                metadata().create_all(conn)
                _stamp(conn, HEAD)
                return HEAD
        if db.engine.dialect.name != "sqlite":
            at = found or "none (tables from before migrations)"
            raise ServiceUnavailableError(
                f"the database schema is at revision {at}, this Tailor needs {HEAD}: {UPGRADE_HINT}"
            )
        _upgrade(conn)
    return HEAD


def upgrade(db: Database) -> tuple[str | None, str]:
    """``tailor db upgrade``: (revision before, revision after) — upgrades any database to head in place."""
    with _locked(db) as conn:
        before = _version(conn)
        if before is not None and before not in REVISIONS:
            raise ConflictError(_ahead(before))
        if before is None and _unversioned(conn) == "head":
            metadata().create_all(conn)
            _stamp(conn, HEAD)
        elif before != HEAD:
            _upgrade(conn)
    return before, HEAD


def current(db: Database) -> str | None:
    """The database's revision (None: no ``alembic_version`` yet, i.e. empty or made before migrations)."""
    with db.engine.connect() as conn:
        return _version(conn)


# -- internals ---------------------------------------------------------------------------------------------


class _locked:
    """A transaction on one connection that holds the database against other migrators: PostgreSQL's advisory
    lock; on SQLite the write lock from the start (BEGIN IMMEDIATE), so a server and a CLI opening an old home
    at once upgrade it once (the second waits, then finds it current)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def __enter__(self) -> Connection:
        self._ctx = self.db.engine.begin()
        conn = self._ctx.__enter__()
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
        elif conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        return conn

    def __exit__(self, *exc: Any) -> None:
        self._ctx.__exit__(*exc)


def _version(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    try:
        return conn.scalar(select(_version_table.c.version_num))
    except (OperationalError, ProgrammingError):
        return None


def _stamp(conn: Connection, revision: str) -> None:
    _version_meta.create_all(conn)
    conn.execute(_version_table.delete())
    conn.execute(_version_table.insert().values(version_num=revision))


def _unversioned(conn: Connection) -> str:
    """A database without ``alembic_version``: "head" when every Tailor table it has is at head (or it has
    none), "baseline" when they are the tables Tailor made before migrations. Anything else is refused."""
    meta = metadata()
    insp = inspect(conn)
    existing = set(insp.get_table_names()) & set(meta.tables)
    problems: list[str] = []
    baseline = True
    head = True
    for name in sorted(existing):
        have = {c["name"] for c in insp.get_columns(name)}
        want = set(meta.tables[name].columns.keys())
        added = ADDED_AFTER_BASELINE.get(name, set())
        if added is None:  # a table later revisions add exists: not a baseline database
            baseline = False
            continue
        if not want <= have:
            head = False
            if not (want - added) <= have:
                problems.append(f"table {name} lacks {', '.join(sorted(want - added - have))}")
        elif added:
            baseline = False
    if head:
        return "head"
    if problems or not baseline:
        detail = "; ".join(problems) or "its tables mix two schema versions"
        raise ConflictError(f"the database's tables match no Tailor schema ({detail}): is it a Tailor database?")
    return "baseline"


def _upgrade(conn: Connection, target: str = "head") -> None:
    from alembic import command

    command.upgrade(_config(conn), target)


def _config(conn: Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    cfg.attributes["connection"] = conn
    return cfg


def _ahead(found: str) -> str:
    return (
        f"the database schema is at revision {found}, which this Tailor ({HEAD}) does not know: a newer Tailor "
        "wrote it; upgrade Tailor"
    )
