"""A mistyped or wrong TAILOR_HOME is one clear line: Tailor creates at most the home's last level."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from tailor.cli.main import cli
from tailor.errors import ValidationError


def tailor(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TAILOR_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "tailor.cli.main", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_a_home_whose_parent_is_missing_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    home = tmp_path / "nonexistent" / "deep" / "home"
    out = tailor(home, "jobs", "list")
    assert out.returncode == 2, out.stderr
    assert out.stderr == (
        f"error: Tailor home {home}: its parent {home.parent} does not exist; create it or choose another home\n"
    )
    assert not (tmp_path / "nonexistent").exists()
    result = CliRunner().invoke(cli, ["--home", str(home), "jobs", "list"])
    assert isinstance(result.exception, ValidationError) and "does not exist" in str(result.exception)


def test_a_home_that_is_a_file_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    home = tmp_path / "a-file"
    home.write_text("not a directory")
    out = tailor(home, "jobs", "list")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr == f"error: Tailor home {home} is not a directory: set TAILOR_HOME (or --home) to a directory\n"


def test_only_the_last_level_is_created_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "new-home"
    out = tailor(home, "jobs", "list")
    assert out.returncode == 0, out.stderr
    assert (home.stat().st_mode & 0o777) == 0o700 and (home / "tailor.db").stat().st_mode & 0o777 == 0o600


def test_commands_that_read_no_settings_neither_load_them_nor_touch_the_home(tmp_path: Path) -> None:
    # pydantic-settings is ~0.3 s of a ~0.6 s start: `tailor data …` and every --help skip it, and a broken
    # home is no obstacle to a command that never uses it.
    home = tmp_path / "nonexistent" / "home"
    code = (
        "import sys\nfrom tailor.cli.main import cli\n"
        "cli.main(['data', 'im2rec', '--help'], prog_name='tailor', standalone_mode=False)\n"
        "print('settings imported:', 'tailor.settings' in sys.modules)\n"
    )
    env = {**os.environ, "TAILOR_HOME": str(home)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Usage: tailor data im2rec" in out.stdout and out.stdout.endswith("settings imported: False\n")
    assert not (tmp_path / "nonexistent").exists()
