"""Metadata store: SQLite (WAL) in TAILOR_HOME by default, any SQLAlchemy URL (PostgreSQL) by setting.

Each domain declares its tables on ``Base`` in its own module (jobs, models, auth); ``Database.create_all``
imports those modules so every table exists before the first query.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from tailor.settings import Settings

# Modules that declare tables on Base. Each domain adds its own line.
TABLE_MODULES: tuple[str, ...] = ("tailor.jobs.store", "tailor.models.store")


class Base(DeclarativeBase):
    pass


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the server read while a job runner writes; busy_timeout rides out short write locks.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _create_private(path: Path) -> None:
    """Create the SQLite file owner-only (0600) before SQLite does (it would use the umask, often 0644); its
    -wal and -shm files copy the database file's mode. An existing file is only chmod-ed, never opened here:
    closing any descriptor of a database file drops the POSIX locks this process's connections hold on it."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)


class Database:
    def __init__(self, settings: Settings) -> None:
        settings.ensure_home()
        self.url = settings.db_url
        if settings.database_url is None:
            _create_private(settings.home / "tailor.db")
        self.engine = make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def create_all(self) -> Database:
        for name in TABLE_MODULES:
            importlib.import_module(name)
        Base.metadata.create_all(self.engine)
        return self

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
