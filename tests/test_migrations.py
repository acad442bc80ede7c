"""Schema migrations: a home database from before migrations is upgraded in place, PostgreSQL is created at
head by `tailor db upgrade`, a database behind is refused with one line, and the scripts equal the models."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import inspect, text

from tailor import migrations
from tailor.cli.main import cli
from tailor.core import Tailor
from tailor.db import Database
from tailor.errors import ConflictError, ServiceUnavailableError
from tailor.settings import Settings
from tests.jobs.specs import fake_spec

SCHEMA = Path(__file__).parent / "fixtures" / "sqlite_schema_before_migrations.sql"
OLD_JOB = (
    "INSERT INTO training_jobs (name, arn, spec, status, secondary_status, transitions, final_metrics, "
    "creation_time, last_modified_time, job_dir, stop_requested) VALUES ('old-job', 'arn:old', :spec, "
    "'Completed', 'Completed', '[]', '[]', '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000', '/x', 0)"
)
SPEC = fake_spec("old-job")


def _home_from_before_migrations(settings: Settings) -> None:
    """The home database exactly as Tailor made it before migrations (its create_all schema), from a version
    older still: it lacks the input-mismatch table that create_all used to add."""
    conn = sqlite3.connect(settings.home / "tailor.db")
    conn.executescript(SCHEMA.read_text())
    conn.execute("DROP TABLE hosting_endpoint_input_mismatches")
    conn.execute(OLD_JOB.replace(":spec", "?"), (json.dumps(SPEC),))
    conn.commit()
    conn.close()


def _columns(db: Database, table: str) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns(table)}


def test_a_home_from_before_migrations_is_upgraded_in_place_when_opened(settings: Settings) -> None:
    _home_from_before_migrations(settings)
    assert json.loads(CliRunner().invoke(cli, ["db", "current", "--json"]).output)["Revision"] is None
    with Tailor.open(settings) as t:  # what every command and the server do: the user runs nothing
        desc = t.jobs.describe("old-job")
        assert desc["TrainingJobStatus"] == "Completed" and desc["CreationTime"].year == 2026
        assert migrations.current(t.db) == migrations.HEAD
        assert {"owner_server"} <= _columns(t.db, "training_jobs")
        assert "hosting_endpoint_input_mismatches" in inspect(t.db.engine).get_table_names()
    out = CliRunner().invoke(cli, ["db", "current"]).output
    assert out.endswith(f"revision {migrations.HEAD} (current)\n"), out


def test_tailor_db_upgrade_upgrades_then_says_current(settings: Settings) -> None:
    _home_from_before_migrations(settings)
    first = CliRunner().invoke(cli, ["db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert first.output == f"database upgraded: unversioned -> {migrations.HEAD}\n"
    again = CliRunner().invoke(cli, ["db", "upgrade"])
    assert again.output == f"database already at revision {migrations.HEAD} (current)\n"
    db = Database(settings)
    with db.session() as s:
        assert s.execute(text("SELECT status FROM training_jobs WHERE name = 'old-job'")).scalar() == "Completed"
    db.dispose()


def test_the_migration_scripts_build_exactly_the_models_tables(store_settings: Settings) -> None:
    db = Database(store_settings)
    try:
        with migrations._locked(db) as conn:
            migrations._upgrade(conn)  # every script, from nothing (open() would create_all instead)
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), migrations.metadata())
        assert diff == []
        assert migrations.current(db) == migrations.HEAD
    finally:
        db.dispose()


def test_the_revisions_known_to_the_code_are_the_scripts() -> None:
    scripts = ScriptDirectory(str(Path(migrations.__file__).parent))
    assert scripts.get_heads() == [migrations.HEAD]
    walked = [r.revision for r in scripts.walk_revisions()]
    assert list(reversed(walked)) == list(migrations.REVISIONS)
    assert migrations.REVISIONS[0] == migrations.BASELINE


def test_fresh_postgresql_is_created_by_tailor_db_upgrade(
    settings: Settings, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAILOR_DATABASE_URL", pg_url)
    res = CliRunner().invoke(cli, ["db", "upgrade"])
    assert res.output == f"database upgraded: unversioned -> {migrations.HEAD}\n", res.output
    now = json.loads(CliRunner().invoke(cli, ["db", "current", "--json"]).output)
    assert now["Revision"] == migrations.HEAD and now["Current"] and now["Database"].startswith("postgresql+psycopg")
    res = CliRunner().invoke(cli, ["jobs", "list"])
    assert res.exit_code == 0, res.output


def test_postgresql_behind_head_is_refused_in_one_line_until_upgraded(
    settings: Settings, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg = settings.model_copy(update={"database_url": pg_url})
    db = Database(pg)
    with migrations._locked(db) as conn:
        migrations._upgrade(conn, migrations.BASELINE)
    db.dispose()
    with pytest.raises(ServiceUnavailableError) as err:
        Tailor.open(pg)
    assert str(err.value) == (
        f"the database schema is at revision {migrations.BASELINE}, this Tailor needs {migrations.HEAD}: "
        "run `tailor db upgrade`"
    )
    monkeypatch.setenv("TAILOR_DATABASE_URL", pg_url)
    server = subprocess.run(  # the server refuses before it binds its port, in one line
        [sys.executable, "-m", "tailor.cli.main", "server", "--port", "1"], capture_output=True, text=True, timeout=120
    )
    assert server.returncode != 0 and server.stderr == f"error: {err.value}\n", server.stderr
    res = CliRunner().invoke(cli, ["db", "upgrade"])
    assert res.output == f"database upgraded: {migrations.BASELINE} -> {migrations.HEAD}\n"
    with Tailor.open(pg) as t:
        assert t.jobs.list()["TrainingJobSummaries"] == []


def test_a_database_written_by_a_newer_tailor_is_refused(settings: Settings) -> None:
    Tailor.open(settings).close()
    db = Database(settings)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    db.dispose()
    known = re.escape(f"({migrations.HEAD})")
    with pytest.raises(ConflictError, match=rf"revision 0099, which this Tailor {known} does not know"):
        Tailor.open(settings)
