"""Metadata store: SQLite (WAL) in TAILOR_HOME by default, any SQLAlchemy URL (PostgreSQL) by setting.

Each domain declares its tables on ``Base`` in its own store module (``jobs.store``, ``hosting.store``,
``auth.keys``); ``Database.create_all`` creates every table declared so far, and the container
(``tailor.core``) imports every domain before calling it, so every table exists before the first query.
Times are stored as UTC and always read back timezone-aware (``UTCDateTime``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, String, TypeDecorator, create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeEngine

from tailor.errors import ValidationError
from tailor.settings import Settings


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """SQLite drops tzinfo; store naive UTC and attach UTC again on load."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


def name_type(length: int = 63) -> TypeEngine[str]:
    """A resource name: compared and sorted byte-wise on every database, as SQLite does. PostgreSQL's default
    collation follows the server's locale (``en_US``: case folded, hyphens ignored), which would reorder
    ListTrainingJobs(SortBy=Name) and its pages; the ``C`` collation there keeps one order everywhere."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


# Row ids of the time series: 64-bit on PostgreSQL (a busy server writes billions of metric points over its
# life); SQLite's INTEGER PRIMARY KEY is already 64-bit and the only form it auto-increments.
BigId = BigInteger().with_variant(Integer(), "sqlite")

CLUSTER_EXTRA = "pip install 'tailor[cluster]'"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the server read while a job runner writes; busy_timeout rides out short write locks.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def normalize_url(url: str) -> str:
    """``postgresql://`` (what PostgreSQL's own tools print) means psycopg 3 here, not SQLAlchemy's psycopg2."""
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - SQLAlchemy raises ArgumentError or ValueError by case
        raise ValidationError(
            f"database_url {_redact(url)!r} is not a database URL: use sqlite:///PATH or "
            "postgresql://USER:PASSWORD@HOST:PORT/DB"
        ) from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return url.split("@")[-1]


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql"):
        try:
            import psycopg  # noqa: F401 - the driver SQLAlchemy loads for postgresql+psycopg
        except ImportError:
            raise ValidationError(
                f"database_url is PostgreSQL but its driver (psycopg 3) is not installed: {CLUSTER_EXTRA}"
            ) from None
        # A server holds few connections (request threads, its supervisors); a pool of 5 + 10 overflow covers
        # them, pre-ping survives a restarted PostgreSQL, and a lost server is noticed within 10 s.
        return create_engine(
            url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args={"connect_timeout": 10}
        )
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
        """Create every table declared on ``Base`` by the modules imported so far (existing ones are kept)."""
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
