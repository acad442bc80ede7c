"""Access keys of named principals, their policies, and revocable bearer tokens, in the metadata DB.

Secrets: SigV4 derives its signing key from the secret itself (HMAC over ``"AWS4"+secret``), so the server must
be able to recover each secret; a one-way hash cannot work. Secrets are therefore stored encrypted with
AES-256-GCM under a master key kept outside the database, in ``$TAILOR_HOME/auth/master.key`` (mode 0600,
created on first use). A copied database (e.g. a shared PostgreSQL dump) alone reveals no secret; servers that
share a database must share that file. Bearer tokens are random 256-bit strings stored only as SHA-256 hashes:
they are looked up, never recomputed. No secret or token is ever logged or returned after creation.

Request-time lookups are cached in process for ``CACHE_TTL_S`` (3 s, at most ``CACHE_MAX`` entries per kind):
key id -> secret, key id -> principal, token hash -> principal. Without it every invocation paid a thread hop
and two DB reads (~0.5-1 ms of the server's CPU per request). Any change made through a ``KeyStore`` in this
process (disable, enable, delete, set-policy, revoke) clears every instance's cache at once; a change made by
another process (``tailor keys disable`` while a server runs) takes effect on the server within the TTL.
Token expiry is checked on every hit, so an expired token never outlives its ``expires_at``.
"""

from __future__ import annotations

import configparser
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Boolean, DateTime, ForeignKey, LargeBinary, String, Text, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column

from tailor.auth.policy import ADMIN_POLICY, Decision, Policy, evaluate, parse_policy
from tailor.db import Base, Database, name_type
from tailor.errors import ConflictError, InternalError, NotFoundError, ValidationError
from tailor.settings import Settings

KEY_ID_PREFIX = "TKIA"  # AWS uses AKIA; a distinct prefix keeps Tailor keys from being mistaken for AWS keys
_KEY_ID_ALPHABET = string.ascii_uppercase + "234567"
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"
TOKEN_PREFIX = "tailor_"
_NAME_RE = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,64}$")  # IAM user-name characters and length
CACHE_TTL_S = 3.0  # how long another process's key change may go unnoticed by a running server
CACHE_MAX = 4096  # entries per cache; a full cache is cleared (cheap, and only an attacker fills it)
_DECISIONS_MAX = 1024  # memoised (action, resource) decisions per principal


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(t: dt.datetime) -> dt.datetime:
    # SQLite returns naive datetimes; everything stored here is UTC.
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


class AccessKeyRow(Base):
    __tablename__ = "auth_access_keys"

    access_key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(name_type(64), unique=True, index=True)
    secret_nonce: Mapped[bytes] = mapped_column(LargeBinary(12))
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary(128))
    policy: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class TokenRow(Base):
    __tablename__ = "auth_tokens"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    access_key_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("auth_access_keys.access_key_id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


@dataclass(frozen=True)
class KeyInfo:
    """An access key as listed: everything but the secret."""

    access_key_id: str
    name: str
    enabled: bool
    created_at: dt.datetime
    policy: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "AccessKeyId": self.access_key_id,
            "Name": self.name,
            "Status": "Active" if self.enabled else "Inactive",
            "CreatedAt": self.created_at.isoformat(),
            "Policy": self.policy,
        }


@dataclass(frozen=True)
class NewKey:
    """A freshly created key: the only time the secret is shown."""

    info: KeyInfo
    secret_access_key: str


@dataclass(frozen=True)
class Principal:
    """Who a verified request came from, and what its policy lets it do."""

    name: str
    access_key_id: str
    policies: tuple[Policy, ...]
    account_id: str
    # Memoised decisions: a principal lives at most CACHE_TTL_S in the key cache and its policies are immutable,
    # so (action, resource) -> Decision stays exact; every invocation of one endpoint asks the same question.
    _decisions: dict[tuple[str, str], Decision] = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:user/{self.name}"

    def decide(self, action: str, resource: str) -> Decision:
        key = (action, resource)
        decision = self._decisions.get(key)
        if decision is None:
            decision = evaluate(self.policies, action, resource)
            if len(self._decisions) >= _DECISIONS_MAX:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision


class _Generation:
    """Bumped by every key or token change in this process; cache entries from an older generation are void."""

    value = 0
    lock = threading.Lock()

    @classmethod
    def bump(cls) -> None:
        with cls.lock:
            cls.value += 1


class _TTLCache:
    """A small thread-safe map whose entries expire after ``CACHE_TTL_S`` or on any in-process key change."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[float, int, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        hit = self._data.get(key)
        if hit is None:
            return None
        expires, generation, value = hit
        if generation != _Generation.value or expires <= time.monotonic():
            with self._lock:
                self._data.pop(key, None)
            return None
        return value

    def put(self, key: str, value: Any, generation: int) -> None:
        """Store ``value`` looked up while ``generation`` was current (dropped if a change happened since)."""
        if value is None or generation != _Generation.value:
            return
        with self._lock:
            if len(self._data) >= CACHE_MAX:
                self._data.clear()
            self._data[key] = (time.monotonic() + CACHE_TTL_S, generation, value)


class _Cipher:
    """AES-256-GCM with a master key file kept beside (not inside) the database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._aead: AESGCM | None = None

    def _key(self) -> AESGCM:
        if self._aead is None:
            if not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                try:
                    fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    pass  # another process made it first; use theirs
                else:
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(AESGCM.generate_key(bit_length=256))
            key = self.path.read_bytes()
            if len(key) != 32:
                raise InternalError(f"{self.path}: master key must be 32 bytes; restore it from backup")
            self._aead = AESGCM(key)
        return self._aead

    def encrypt(self, plaintext: str, context: str) -> tuple[bytes, bytes]:
        nonce = os.urandom(12)
        return nonce, self._key().encrypt(nonce, plaintext.encode(), context.encode())

    def decrypt(self, nonce: bytes, ciphertext: bytes, context: str) -> str:
        try:
            return self._key().decrypt(nonce, ciphertext, context.encode()).decode()
        except InvalidTag:
            raise InternalError(f"cannot decrypt an access key with {self.path}: wrong master key file") from None


class KeyStore:
    """Create, list, disable and delete access keys; resolve key ids and tokens to principals."""

    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        self.settings = settings
        self.db = db or Database(settings)
        Base.metadata.create_all(self.db.engine, tables=[AccessKeyRow.__table__, TokenRow.__table__])
        self._cipher = _Cipher(settings.home / "auth" / "master.key")
        self._secrets = _TTLCache()  # access key id -> secret (active keys only)
        self._principals = _TTLCache()  # access key id -> Principal (active keys only)
        self._tokens = _TTLCache()  # token sha256 -> (expires_at, Principal) (live tokens only)

    # -- management -----------------------------------------------------------------------------------
    def create(self, name: str, policy: str | dict[str, Any] | None = None, *, admin: bool = False) -> NewKey:
        """A new key for principal ``name``. No policy means no permissions (closed by default)."""
        if not _NAME_RE.match(name):
            raise ValidationError(f"key name {name!r}: use 1-64 letters, digits and +=,.@_-")
        if admin and policy is not None:
            raise ValidationError("give either --admin or --policy, not both")
        doc = ADMIN_POLICY if admin else parse_policy(policy).document if policy is not None else None
        key_id = KEY_ID_PREFIX + "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(16))
        secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
        nonce, ct = self._cipher.encrypt(secret, key_id)
        row = AccessKeyRow(
            access_key_id=key_id,
            name=name,
            secret_nonce=nonce,
            secret_ciphertext=ct,
            policy=_dump(doc),
            enabled=True,
            created_at=_now(),
        )
        with self.db.session() as s:
            if s.scalar(select(AccessKeyRow).where(AccessKeyRow.name == name)) is not None:
                raise ConflictError(f"a key named {name!r} exists already: delete it or choose another name")
            s.add(row)
        return NewKey(_info(row), secret)

    def list(self) -> list[KeyInfo]:
        with self.db.session() as s:
            return [_info(r) for r in s.scalars(select(AccessKeyRow).order_by(AccessKeyRow.name))]

    def get(self, key: str) -> KeyInfo:
        with self.db.session() as s:
            return _info(self._row(s, key))

    def set_enabled(self, key: str, enabled: bool) -> KeyInfo:
        """Enable or disable a key. Disabling also revokes its tokens, so enabling it again (say, after a token
        leaked) brings back none of them."""
        with self.db.session() as s:
            row = self._row(s, key)
            row.enabled = enabled
            if not enabled:
                s.execute(update(TokenRow).where(TokenRow.access_key_id == row.access_key_id).values(revoked=True))
            info = _info(row)
        _Generation.bump()
        return info

    def set_policy(self, key: str, policy: str | dict[str, Any] | None) -> KeyInfo:
        doc = parse_policy(policy).document if policy is not None else None
        with self.db.session() as s:
            row = self._row(s, key)
            row.policy = _dump(doc)
            info = _info(row)
        _Generation.bump()
        return info

    def delete(self, key: str) -> None:
        with self.db.session() as s:
            row = self._row(s, key)
            s.execute(delete(TokenRow).where(TokenRow.access_key_id == row.access_key_id))
            s.delete(row)
        _Generation.bump()

    # -- request-time lookups -------------------------------------------------------------------------
    def secret_of(self, access_key_id: str) -> str | None:
        """The secret of an active key, or None for unknown and disabled keys alike."""

        def decrypt(row: AccessKeyRow) -> str:
            return self._cipher.decrypt(row.secret_nonce, row.secret_ciphertext, row.access_key_id)

        return self._read_through(self._secrets, access_key_id, decrypt)

    def cached_secret(self, access_key_id: str) -> str | None:
        """The secret if the cache holds it (no DB, safe on an event loop); None means "ask ``secret_of``"."""
        return self._secrets.get(access_key_id)

    def principal(self, access_key_id: str) -> Principal | None:
        return self._read_through(self._principals, access_key_id, self._principal)

    def _read_through(self, cache: _TTLCache, access_key_id: str, load: Callable[[AccessKeyRow], Any]) -> Any:
        """A cache hit, else ``load`` of the active key's row (None for unknown and disabled keys alike), cached
        under the generation read before the database was (a change meanwhile leaves it uncached)."""
        value = cache.get(access_key_id)
        if value is not None:
            return value
        generation = _Generation.value
        with self.db.session() as s:
            row = s.get(AccessKeyRow, access_key_id)
            value = load(row) if row is not None and row.enabled else None
        cache.put(access_key_id, value, generation)
        return value

    def cached_principal(self, access_key_id: str) -> Principal | None:
        return self._principals.get(access_key_id)

    def issue_token(self, key: str, ttl_seconds: int | None = None) -> tuple[str, dt.datetime]:
        """A bearer token for an active key; valid until it expires, is revoked, or the key is disabled (which
        revokes it) or deleted. Callers are the CLI on the server's home and a SigV4-signed request only."""
        ttl = ttl_seconds or self.settings.token_ttl_seconds
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires = _now() + dt.timedelta(seconds=ttl)
        with self.db.session() as s:
            row = self._row(s, key)
            if not row.enabled:
                raise ValidationError(f"key {row.name!r} is disabled: enable it before issuing tokens")
            s.add(TokenRow(token_sha256=_sha(token), access_key_id=row.access_key_id, expires_at=expires))
        return token, expires

    def principal_for_token(self, token: str) -> Principal | None:
        digest = _sha(token)
        hit = self.cached_token_principal(token, digest)
        if hit is not None:
            return hit
        generation = _Generation.value
        with self.db.session() as s:
            tok = s.get(TokenRow, digest)
            if tok is None or tok.revoked or _aware(tok.expires_at) <= _now():
                return None
            expires = _aware(tok.expires_at)
            row = s.get(AccessKeyRow, tok.access_key_id)
            principal = self._principal(row) if row is not None and row.enabled else None
        if principal is not None:
            self._tokens.put(digest, (expires, principal), generation)
        return principal

    def cached_token_principal(self, token: str, digest: str | None = None) -> Principal | None:
        """The token's principal if cached and the token has not expired (no DB); None means "look it up"."""
        hit = self._tokens.get(digest or _sha(token))
        if hit is None or hit[0] <= _now():
            return None
        return hit[1]

    def revoke_token(self, token: str) -> bool:
        with self.db.session() as s:
            tok = s.get(TokenRow, _sha(token))
            if tok is None:
                return False
            tok.revoked = True
        _Generation.bump()
        return True

    def revoke_tokens(self, key: str) -> int:
        """Revoke every token of a key; returns how many were live."""
        with self.db.session() as s:
            row = self._row(s, key)
            toks = s.scalars(
                select(TokenRow).where(TokenRow.access_key_id == row.access_key_id, TokenRow.revoked.is_(False))
            ).all()
            for tok in toks:
                tok.revoked = True
        _Generation.bump()
        return len(toks)

    # -- helpers --------------------------------------------------------------------------------------
    def _row(self, s: Any, key: str) -> AccessKeyRow:
        row = s.get(AccessKeyRow, key) or s.scalar(select(AccessKeyRow).where(AccessKeyRow.name == key))
        if row is None:
            raise NotFoundError(f"no access key with id or name {key!r}: see `tailor keys list`")
        return row

    def _principal(self, row: AccessKeyRow) -> Principal:
        doc = _load(row.policy)
        policies = (parse_policy(doc),) if doc is not None else ()
        return Principal(row.name, row.access_key_id, policies, self.settings.account_id)


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _dump(doc: dict[str, Any] | None) -> str:
    return json.dumps(doc, sort_keys=True)


def _load(text: str) -> dict[str, Any] | None:
    return json.loads(text)


def _info(row: AccessKeyRow) -> KeyInfo:
    return KeyInfo(row.access_key_id, row.name, row.enabled, _aware(row.created_at), _load(row.policy) or {})


# -- client-side credentials -------------------------------------------------------------------------
@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:  # never print the secret
        return f"Credentials(access_key_id={self.access_key_id!r}, secret_access_key='***')"


def resolve_credentials(settings: Settings) -> Credentials | None:
    """Settings (flags / TAILOR_ACCESS_KEY_ID + TAILOR_SECRET_ACCESS_KEY) first, then the profile file."""
    if settings.access_key_id and settings.secret_access_key:
        return Credentials(settings.access_key_id, settings.secret_access_key)
    if settings.access_key_id or settings.secret_access_key:
        raise ValidationError("set both TAILOR_ACCESS_KEY_ID and TAILOR_SECRET_ACCESS_KEY, or neither")
    path = settings.credentials_path
    if not path.is_file():
        return None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path)
    except configparser.Error as err:
        raise ValidationError(f"{path}: not an INI credentials file ({err.__class__.__name__})") from None
    if not parser.has_section(settings.profile):
        raise ValidationError(f"{path}: no profile [{settings.profile}]; set TAILOR_PROFILE to one it has")
    sec = parser[settings.profile]
    key_id, secret = sec.get("aws_access_key_id"), sec.get("aws_secret_access_key")
    if not key_id or not secret:
        raise ValidationError(f"{path} [{settings.profile}]: needs aws_access_key_id and aws_secret_access_key")
    return Credentials(key_id, secret)


def write_credentials(path: Path, creds: Credentials, profile: str = "default") -> Path:
    """Write (or update one profile of) an AWS-style credentials file readable only by its owner (0600)."""
    parser = configparser.ConfigParser(interpolation=None)
    if path.is_file():
        parser.read(path)
    parser[profile] = {"aws_access_key_id": creds.access_key_id, "aws_secret_access_key": creds.secret_access_key}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        parser.write(fh)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def init_admin(settings: Settings, name: str = "admin", db: Database | None = None) -> tuple[NewKey, Path]:
    """Create an admin key (policy ``*`` on ``*``) and write it to the credentials file (0600) as the profile."""
    new = KeyStore(settings, db).create(name, admin=True)
    path = write_credentials(
        settings.credentials_path, Credentials(new.info.access_key_id, new.secret_access_key), settings.profile
    )
    return new, path
