"""Bearer tokens over HTTP: only a SigV4 signature (or `tailor keys token` on the server's home) mints one, so a
leaked token can never outlive its own revocation through successors; disabling a key ends its tokens for good."""

from __future__ import annotations

import httpx
from click.testing import CliRunner
from sqlalchemy import func, select

from tailor import Client
from tailor.auth.keys import KeyStore, TokenRow
from tailor.cli.main import cli
from tailor.settings import Settings


def signed_token(api_server: str) -> str:
    """POST /auth/tokens signed with the admin key of this home (as the SDK signs)."""
    with Client(url=api_server) as client:
        resp = client._http.send(client._signed(client._http.build_request("POST", "/auth/tokens")))
    assert resp.status_code == 200, resp.text
    return resp.json()["Token"]


def token_rows(settings: Settings) -> int:
    store = KeyStore(settings)
    with store.db.session() as s:
        return s.scalar(select(func.count()).select_from(TokenRow)) or 0


def test_a_token_cannot_mint_tokens(settings: Settings, api_server: str, admin_credentials) -> None:
    token = signed_token(api_server)
    before = token_rows(settings)
    auth = {"Authorization": f"Bearer {token}"}
    resp = httpx.post(f"{api_server}/auth/tokens", headers=auth)
    assert resp.status_code == 403, resp.text
    assert resp.json()["__type"] == resp.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert "bearer token cannot issue tokens" in resp.json()["message"] and token not in resp.text
    assert token_rows(settings) == before  # nothing minted
    # The token itself still works, and revoking it ends it (there is no successor to survive it).
    assert httpx.get(f"{api_server}/api/v1/training-jobs", headers=auth).status_code == 200
    assert httpx.request("DELETE", f"{api_server}/auth/tokens", headers=auth).json() == {"Revoked": True}
    assert httpx.get(f"{api_server}/api/v1/training-jobs", headers=auth).status_code == 403
    # The CLI on the server's home still mints.
    out = CliRunner().invoke(cli, ["keys", "token", admin_credentials.access_key_id])
    assert out.exit_code == 0 and token_rows(settings) == before + 1, out.output


def test_disabling_a_key_revokes_its_tokens_for_good(settings: Settings, api_server: str, admin_credentials) -> None:
    token = signed_token(api_server)
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{api_server}/api/v1/training-jobs", headers=auth).status_code == 200
    runner = CliRunner()
    assert runner.invoke(cli, ["keys", "disable", admin_credentials.access_key_id]).exit_code == 0
    refused = httpx.get(f"{api_server}/api/v1/training-jobs", headers=auth)
    assert refused.status_code == 403 and refused.json()["__type"] == "UnrecognizedClientException"
    assert runner.invoke(cli, ["keys", "enable", admin_credentials.access_key_id]).exit_code == 0
    # The key signs again; the token issued before the disable stays dead.
    with Client(url=api_server) as client:
        assert client.list_training_jobs()["TrainingJobSummaries"] == []
    assert httpx.get(f"{api_server}/api/v1/training-jobs", headers=auth).status_code == 403
