"""Authentication and authorization for the HTTP API: SigV4 or bearer tokens, then IAM-style policies.

Two steps, split so each runs where it can:

1. ``AuthenticationMiddleware`` (pure ASGI) identifies the caller of every request that carries an
   ``Authorization`` header. SigV4 covers the body, so a signed request's body is buffered (at most
   ``MAX_SIGNED_BODY_BYTES``; larger ones are refused before any handler runs) and replayed to the route.
   Control-plane bodies were already capped at 1 MiB outside this layer (``tailor.api.limits``).
   The outcome, a ``Principal`` or the ``AuthError`` to raise, is left in ``request.state``.
2. ``Authorizer.authorize(request, action, resource_arn)`` (called by ``tailor.api.deps.require`` and by the
   SageMaker protocol router) raises that error, or ``MissingAuthenticationTokenError`` when the request was
   not signed at all, or ``AccessDeniedError`` unless the principal's policy allows ``action`` on the ARN.

Routes that never call ``authorize`` (health checks) stay open; every route that reads, creates or runs
anything calls it, so the server is closed by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tailor.api.errors import AWS_JSON, aws_error
from tailor.asgi import content_length, read_body, replay
from tailor.auth import sigv4
from tailor.auth.keys import KeyStore, Principal
from tailor.auth.policy import Decision
from tailor.errors import AccessDeniedError, AuthError, PayloadTooLargeError, TailorError, UnrecognizedClientError
from tailor.resources import arn
from tailor.settings import Settings

# SageMaker's invocation limit is 6 MB. 1 MiB of headroom lets the invocation route answer its own precise 413
# for 6-7 MiB bodies; anything bigger never reaches a handler. (Control-plane routes stop at 1 MiB, earlier.)
MAX_SIGNED_BODY_BYTES = 7 * 1024 * 1024
_STATE_KEY = "tailor_auth"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class MissingAuthenticationTokenError(AuthError):
    code = "MissingAuthenticationTokenException"


class AuthenticationMiddleware:
    def __init__(self, app: ASGIApp, keys: KeyStore, settings: Settings) -> None:
        self.app = app
        self.keys = keys
        self.settings = settings
        # In-flight cache fills per event loop: when a cached entry expires under load (64 connections), one
        # lookup goes to the DB and the other requests wait for it instead of 64 threads reading the same row.
        self._flights: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], asyncio.Task[Any]]]
        self._flights = weakref.WeakKeyDictionary()

    async def _once(self, key: tuple[str, str], fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        flights = self._flights.setdefault(loop, {})
        task = flights.get(key)
        if task is None:
            task = flights[key] = loop.create_task(anyio.to_thread.run_sync(fn, *args))
            task.add_done_callback(lambda _t: flights.pop(key, None))
        return await asyncio.shield(task)

    def _warm(self, access_key_id: str) -> None:
        """Fill the key cache (secret and principal) for one access key id; unknown/disabled keys fill nothing."""
        if self.keys.secret_of(access_key_id) is not None:
            self.keys.principal(access_key_id)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_headers = scope.get("headers", [])
        # One pass for the Authorization header; the full decoded list is built only for SigV4, which needs it.
        authorization = next((v for k, v in raw_headers if k.lower() == b"authorization"), b"").decode("latin-1")
        state = scope.setdefault("state", {})
        if not authorization:
            await self.app(scope, receive, send)
            return
        if authorization[:7].lower() == "bearer ":
            token = authorization[7:].strip()
            # A cached token answers on the loop; only a miss goes to a thread for the DB (keys.py: 3 s TTL).
            principal = self.keys.cached_token_principal(token) or await self._once(
                ("token", token), self.keys.principal_for_token, token
            )
            state[_STATE_KEY] = principal or UnrecognizedClientError("The bearer token is invalid, expired or revoked.")
            await self.app(scope, receive, send)
            return
        if not sigv4.is_sigv4(authorization):
            state[_STATE_KEY] = sigv4.IncompleteSignatureError(
                "Authorization must be 'AWS4-HMAC-SHA256 …' (SigV4) or 'Bearer <token>'."
            )
            await self.app(scope, receive, send)
            return
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw_headers]
        try:
            body = await read_body(receive, content_length(raw_headers), MAX_SIGNED_BODY_BYTES)
        except PayloadTooLargeError as err:
            await aws_error(err, media_type=AWS_JSON)(scope, receive, send)
            return
        try:
            # The same exact SigV4 check either way; with the key's secret and principal cached it runs on the
            # loop (~30 us of HMACs), otherwise on a thread because the DB is read.
            outcome = self._verify(scope, headers, body, cached_only=True)
        except _NotCached:
            outcome = await self._verify_uncached(authorization, scope, headers, body)
        state[_STATE_KEY] = outcome
        await self.app(scope, replay(body, receive), send)

    async def _verify_uncached(
        self, authorization: str, scope: Scope, headers: list[tuple[str, str]], body: bytes
    ) -> Principal | AuthError:
        try:
            key_id = sigv4.parse_authorization(authorization).access_key_id
        except AuthError:
            key_id = ""
        if key_id:
            await self._once(("key", key_id), self._warm, key_id)
            with contextlib.suppress(_NotCached):
                return self._verify(scope, headers, body, cached_only=True)
        return await anyio.to_thread.run_sync(self._verify, scope, headers, body)

    def _verify(
        self, scope: Scope, headers: list[tuple[str, str]], body: bytes, cached_only: bool = False
    ) -> Principal | AuthError:
        secret_of = self._cached_secret if cached_only else self.keys.secret_of
        try:
            key_id = sigv4.verify(
                method=scope["method"],
                raw_path=(scope.get("raw_path") or scope["path"].encode()).decode("latin-1"),
                query_string=scope.get("query_string", b"").decode("latin-1"),
                headers=headers,
                body=body,
                secret_of=secret_of,
                region=self.settings.region,
            )
        except AuthError as err:
            return err
        principal = self.keys.cached_principal(key_id)
        if principal is None:
            if cached_only:
                raise _NotCached
            principal = self.keys.principal(key_id)
        return principal or UnrecognizedClientError("The security token included in the request is invalid.")

    def _cached_secret(self, access_key_id: str) -> str | None:
        secret = self.keys.cached_secret(access_key_id)
        if secret is None:
            raise _NotCached
        return secret


class _NotCached(Exception):
    """The key is not in the KeyStore's cache: verify again on a thread, where the DB may be read."""


class Authorizer:
    """Checks the authenticated principal's policy; the one object ``deps.require`` calls."""

    def __init__(self, settings: Settings, keys: KeyStore) -> None:
        self.settings = settings
        self.keys = keys

    def arn(self, resource_type: str, name: str) -> str:
        return arn(self.settings.region, self.settings.account_id, resource_type, name)

    def authenticate(self, request: Request) -> Principal:
        outcome = getattr(request.state, _STATE_KEY, None)
        if isinstance(outcome, AuthError):
            raise outcome
        if outcome is None:
            raise MissingAuthenticationTokenError(
                "Missing Authentication Token: sign the request (SigV4) or send 'Authorization: Bearer <token>'."
            )
        return outcome

    def authorize(self, request: Request, action: str, resource: str | None) -> Principal:
        principal = self.authenticate(request)
        arn = resource or "*"  # actions without resource-level permissions (List*) match only "*"
        decision = principal.decide(action, arn)
        if not decision.allowed:
            why = "with an explicit deny" if decision is Decision.EXPLICIT_DENY else "because no policy allows it"
            raise AccessDeniedError(
                f"User: {principal.arn} is not authorized to perform: {action} on resource: {arn} {why}"
            )
        request.state.principal = principal
        return principal

    def allows(self, request: Request, action: str, resource: str | None) -> bool:
        """Whether the authenticated caller may do ``action`` on ``resource`` (for filtering what a page shows
        without refusing the whole request)."""
        return self.authenticate(request).decide(action, resource or "*").allowed


def install(app: FastAPI, settings: Settings, keys: KeyStore | None = None) -> Authorizer:
    """Put authentication in front of every route and make ``app.state.authorizer`` the real one."""
    keys = keys or KeyStore(settings)
    authorizer = Authorizer(settings, keys)
    app.state.authorizer = authorizer
    app.state.keys = keys
    app.add_middleware(AuthenticationMiddleware, keys=keys, settings=settings)
    app.include_router(_token_router())
    return authorizer


def _token_router() -> Any:
    from fastapi import APIRouter

    router = APIRouter()

    @router.post("/auth/tokens")
    def issue_token(request: Request) -> JSONResponse:
        """Exchange a signed request for a bearer token of the same key (for curl and the web console).

        Only a SigV4 signature (proof of the secret) mints a token, never another token: otherwise a leaked
        token could keep minting successors that outlive its own revocation or expiry."""
        authorizer: Authorizer = request.app.state.authorizer
        try:
            principal = authorizer.authenticate(request)
            if _bearer(request) is not None:
                raise AccessDeniedError(
                    "A bearer token cannot issue tokens: sign POST /auth/tokens with the access key (SigV4), "
                    "or run `tailor keys token KEY` on the server."
                )
            token, expires = authorizer.keys.issue_token(principal.access_key_id)
        except TailorError as err:
            return aws_error(err, media_type=AWS_JSON)
        return JSONResponse({"Token": token, "Expiration": expires.isoformat(), "AccessKeyId": principal.access_key_id})

    @router.delete("/auth/tokens")
    def revoke_token(request: Request) -> JSONResponse:
        """Revoke the bearer token this request carries (log out)."""
        authorizer: Authorizer = request.app.state.authorizer
        try:
            authorizer.authenticate(request)
        except TailorError as err:
            return aws_error(err, media_type=AWS_JSON)
        token = _bearer(request)
        revoked = token is not None and authorizer.keys.revoke_token(token)
        return JSONResponse({"Revoked": bool(revoked)})

    return router


def _bearer(request: Request) -> str | None:
    """The bearer token a request authenticated with, or None (SigV4 or no credential)."""
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else None
