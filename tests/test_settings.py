"""Settings precedence (defaults < config.toml < env < arguments) and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailor.errors import ValidationError
from tailor.settings import load_settings


def test_precedence_file_env_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('region = "eu-west-1"\nport = 9000\nmax_concurrent_jobs = 3\n')
    monkeypatch.setenv("TAILOR_HOME", str(home))
    monkeypatch.setenv("TAILOR_PORT", "9100")
    s = load_settings(max_concurrent_jobs=None)  # an unset CLI flag does not override
    assert (s.region, s.port, s.max_concurrent_jobs) == ("eu-west-1", 9100, 3)
    assert load_settings(port=9200).port == 9200
    assert s.db_url == f"sqlite:///{home.resolve() / 'tailor.db'}"


def test_home_argument_selects_its_config(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.toml").write_text('account_id = "123456789012"\n')
    assert load_settings(home=str(other)).account_id == "123456789012"


@pytest.mark.parametrize(("key", "value"), [("account_id", "12"), ("port", 70000), ("max_concurrent_jobs", 0)])
def test_invalid_values_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ValidationError, match=key):
        load_settings(**{key: value})


def test_unknown_key_in_config_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("prot = 1\n")
    with pytest.raises(ValidationError, match="prot"):
        load_settings(home=str(tmp_path))


@pytest.mark.slow
def test_cli_reports_a_bad_setting_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    monkeypatch.setenv("TAILOR_PORT", "not-a-port")
    out = subprocess.run([sys.executable, "-m", "tailor.cli.main", "config"], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: invalid setting 'port'") and out.stderr.count("\n") == 1


def test_cli_config_shows_resolved_values_and_hides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from tailor.cli.main import cli

    monkeypatch.setenv("TAILOR_S3_SECRET_ACCESS_KEY", "very-secret")
    result = CliRunner().invoke(cli, ["config", "--json"])
    assert result.exit_code == 0, result.output
    assert "very-secret" not in result.output
    assert '"s3_secret_access_key": "***"' in result.output
