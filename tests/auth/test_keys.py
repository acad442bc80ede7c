"""Access key store: creation, encryption at rest, disable/delete, tokens, and client credential resolution."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest

from tailor.auth.keys import Credentials, KeyStore, resolve_credentials, write_credentials
from tailor.errors import ConflictError, NotFoundError, ValidationError
from tailor.settings import Settings, load_settings

POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": "*"}],
}


def test_create_lookup_and_secret_is_encrypted_at_rest(settings: Settings) -> None:
    store = KeyStore(settings)
    new = store.create("alice", POLICY)
    assert new.info.access_key_id.startswith("TKIA") and len(new.info.access_key_id) == 20
    assert len(new.secret_access_key) == 40
    assert store.secret_of(new.info.access_key_id) == new.secret_access_key
    assert new.secret_access_key.encode() not in (settings.home / "tailor.db").read_bytes()
    master = settings.home / "auth" / "master.key"
    assert stat.S_IMODE(master.stat().st_mode) == 0o600
    p = store.principal(new.info.access_key_id)
    assert p is not None and p.arn == f"arn:aws:iam::{settings.account_id}:user/alice"
    assert p.decide("sagemaker:InvokeEndpoint", "arn:x").allowed
    assert not p.decide("sagemaker:CreateEndpoint", "arn:x").allowed
    assert [k.name for k in store.list()] == ["alice"]
    assert "secret" not in str(store.list()[0].to_dict()).lower()


def test_key_without_policy_can_do_nothing(store_settings: Settings) -> None:
    store = KeyStore(store_settings)
    new = store.create("nobody")
    p = store.principal(new.info.access_key_id)
    assert p is not None and not p.decide("sagemaker:InvokeEndpoint", "*").allowed


def test_admin_key_can_do_everything(store_settings: Settings) -> None:
    store = KeyStore(store_settings)
    p = store.principal(store.create("root", admin=True).info.access_key_id)
    assert p is not None and p.decide("sagemaker:DeleteEndpoint", "arn:aws:sagemaker:x").allowed


def test_duplicate_names_and_bad_input(store_settings: Settings) -> None:
    store = KeyStore(store_settings)
    store.create("bob")
    with pytest.raises(ConflictError):
        store.create("bob")
    with pytest.raises(ValidationError):
        store.create("../etc")
    with pytest.raises(ValidationError):
        store.create("carol", {"Version": "2012-10-17", "Statement": {"Effect": "Allow"}})
    with pytest.raises(NotFoundError):
        store.get("nobody")


def test_disable_enable_delete(store_settings: Settings) -> None:
    store = KeyStore(store_settings)
    key_id = store.create("dave", POLICY).info.access_key_id
    store.set_enabled("dave", False)
    assert store.secret_of(key_id) is None and store.principal(key_id) is None
    store.set_enabled(key_id, True)
    assert store.secret_of(key_id) is not None
    store.delete("dave")
    assert store.secret_of(key_id) is None
    assert store.list() == []


def test_tokens_expire_revoke_and_follow_the_key(store_settings: Settings) -> None:
    store = KeyStore(store_settings)
    store.create("erin", POLICY)
    token, expires = store.issue_token("erin", ttl_seconds=60)
    assert expires > dt.datetime.now(dt.UTC)
    assert store.principal_for_token(token).name == "erin"  # type: ignore[union-attr]
    assert store.principal_for_token(token + "x") is None
    store.set_enabled("erin", False)
    assert store.principal_for_token(token) is None
    # Disabling revoked the key's tokens: enabling it again (say, after a token leaked) revives none.
    store.set_enabled("erin", True)
    assert store.principal_for_token(token) is None
    live, _ = store.issue_token("erin")
    assert store.revoke_tokens("erin") == 1
    assert store.principal_for_token(live) is None
    token2, _ = store.issue_token("erin")
    assert store.revoke_token(token2) and store.principal_for_token(token2) is None
    token3, _ = store.issue_token("erin", ttl_seconds=60)
    from tailor.auth import keys as keys_mod

    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=61)
    orig = keys_mod._now
    keys_mod._now = lambda: later  # type: ignore[assignment]
    try:
        assert store.principal_for_token(token3) is None
    finally:
        keys_mod._now = orig  # type: ignore[assignment]


def test_credentials_resolution_order(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert resolve_credentials(settings) is None
    path = write_credentials(settings.credentials_path, Credentials("TKIAFILE", "filesecret"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve_credentials(settings) == Credentials("TKIAFILE", "filesecret")
    write_credentials(path, Credentials("TKIAOTHER", "othersecret"), profile="other")
    assert resolve_credentials(load_settings(home=str(settings.home), profile="other")).access_key_id == "TKIAOTHER"
    monkeypatch.setenv("TAILOR_ACCESS_KEY_ID", "TKIAENV")
    monkeypatch.setenv("TAILOR_SECRET_ACCESS_KEY", "envsecret")
    creds = resolve_credentials(load_settings(home=str(settings.home)))
    assert creds == Credentials("TKIAENV", "envsecret")
    assert "envsecret" not in repr(creds)
    with pytest.raises(ValidationError, match="no profile"):
        monkeypatch.delenv("TAILOR_ACCESS_KEY_ID")
        monkeypatch.delenv("TAILOR_SECRET_ACCESS_KEY")
        resolve_credentials(load_settings(home=str(settings.home), profile="missing"))


def test_request_time_cache_is_cleared_by_any_change_in_process_and_expires_for_other_processes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from sqlalchemy import update

    from tailor.auth import keys as keys_mod

    server, admin = KeyStore(settings), KeyStore(settings)  # a server's and an admin's, in one process
    key = server.create("gus", POLICY).info.access_key_id
    token, _ = server.issue_token("gus", ttl_seconds=60)
    assert server.principal_for_token(token) is not None and server.secret_of(key) is not None
    assert server.cached_token_principal(token) is not None and server.cached_secret(key) is not None
    admin.revoke_token(token)  # through another KeyStore of this process: void at once
    assert server.cached_token_principal(token) is None and server.principal_for_token(token) is None
    assert server.principal(key) is not None
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}
    admin.set_policy("gus", deny)
    assert not server.principal(key).decide("sagemaker:InvokeEndpoint", "*").allowed  # type: ignore[union-attr]
    admin.set_enabled("gus", False)
    assert server.secret_of(key) is None and server.principal(key) is None

    # Another process changes the DB behind this one's back: noticed within the TTL.
    monkeypatch.setattr(keys_mod, "CACHE_TTL_S", 0.3)
    admin.set_enabled("gus", True)
    assert server.secret_of(key) is not None
    with server.db.session() as s:
        s.execute(update(keys_mod.AccessKeyRow).where(keys_mod.AccessKeyRow.access_key_id == key).values(enabled=False))
    assert server.secret_of(key) is not None  # still cached
    time.sleep(0.35)
    assert server.secret_of(key) is None
