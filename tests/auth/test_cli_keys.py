"""`tailor keys …` and `tailor server init` through the click entry point."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from click.testing import CliRunner

from tailor.auth.keys import KeyStore, resolve_credentials
from tailor.cli.main import cli
from tailor.settings import Settings, load_settings


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_server_init_writes_an_owner_only_admin_credentials_file(settings: Settings) -> None:
    out = run("server", "init")
    path = settings.credentials_path
    assert str(path) in out and stat.S_IMODE(path.stat().st_mode) == 0o600
    creds = resolve_credentials(load_settings(home=str(settings.home)))
    assert creds is not None and creds.access_key_id in out and creds.secret_access_key not in out
    principal = KeyStore(settings).principal(creds.access_key_id)
    assert principal is not None and principal.decide("sagemaker:DeleteEndpoint", "arn:any").allowed


def test_keys_lifecycle(settings: Settings, tmp_path: Path) -> None:
    policy = tmp_path / "invoke.json"
    policy.write_text(
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sagemaker:InvokeEndpoint",
                        "Resource": f"arn:aws:sagemaker:us-east-1:{settings.account_id}:endpoint/fashion",
                    }
                ],
            }
        )
    )
    created = json.loads(run("keys", "create", "--name", "app", "--policy", str(policy)).split("\nThe secret")[0])
    key_id, secret = created["AccessKeyId"], created["SecretAccessKey"]
    listing = run("keys", "list")
    assert key_id in listing and "Active" in listing and secret not in listing
    assert secret not in run("keys", "show", "app")
    run("keys", "disable", "app")
    assert "Inactive" in run("keys", "list") and KeyStore(settings).secret_of(key_id) is None
    run("keys", "enable", key_id)
    token = run("keys", "token", "app").strip()  # the bare token, ready for `Authorization: Bearer $(…)`
    assert KeyStore(settings).principal_for_token(token) is not None
    issued = json.loads(run("keys", "token", "app", "--json"))
    assert KeyStore(settings).principal_for_token(issued["Token"]) is not None and "Expiration" in issued
    assert "revoked 2" in run("keys", "revoke-tokens", "app")
    run("keys", "delete", "app")
    assert key_id not in run("keys", "list")


def test_bad_policy_file_is_one_clear_error(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*"}]}')
    result = CliRunner().invoke(cli, ["keys", "create", "--name", "x", "--policy", str(bad)])
    assert result.exit_code != 0 and "Resource or NotResource" in str(result.exception)
