"""How the HTTP server answers an error: the one place ``TailorError`` becomes a response.

Two envelopes, each rendered here and nowhere else:

- REST (``/api/v1/...``, the console's JSON): ``{"error": {"code", "message"}}`` with the error's HTTP status;
- AWS (the SageMaker JSON protocol, SageMaker Runtime's InvokeEndpoint, authentication): ``{"__type",
  "message"}`` with header ``x-amzn-ErrorType``, which boto3 reads. Where one route serves both kinds of client
  (invocations, authentication failures on any route) the body carries the REST envelope too.

The wording a client sees comes from ``tailor.errors.public_message``: 5xx details stay in the server log.
Which status and code an AWS operation answers (SageMaker's 400 ValidationException for a missing resource,
say) is the protocol router's choice; how the answer is written is made here.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from tailor.errors import (
    AuthError,
    InternalError,
    TailorError,
    ValidationError,
    public_message,
)

log = logging.getLogger("tailor.api")
AWS_JSON = "application/x-amz-json-1.1"
Headers = list[tuple[bytes, bytes]]


def rest_error(err: TailorError) -> JSONResponse:
    return JSONResponse({"error": {"code": err.code, "message": public_message(err)}}, status_code=err.http_status)


def aws_error_parts(
    err: TailorError, status: int | None = None, *, rest_envelope: bool = False, media_type: str = "application/json"
) -> tuple[int, Headers, bytes]:
    """(status, raw headers, body) of AWS's error shape, for plain ASGI senders and for ``aws_error``."""
    status = status or err.http_status
    message = public_message(err, status)
    body: dict[str, object] = {"__type": err.code, "message": message}
    if rest_envelope:
        body["error"] = {"code": err.code, "message": message}
    code = err.code.encode("latin-1")
    headers = [(b"content-type", media_type.encode()), (b"x-amzn-errortype", code), (b"x-amzn-requestid", b"tailor")]
    return status, headers, json.dumps(body).encode()


def aws_error(
    err: TailorError, status: int | None = None, *, rest_envelope: bool = False, media_type: str = "application/json"
) -> Response:
    status, headers, body = aws_error_parts(err, status, rest_envelope=rest_envelope, media_type=media_type)
    return Response(body, status_code=status, headers={k.decode(): v.decode("latin-1") for k, v in headers})


def install(app: FastAPI) -> None:
    """The REST surface's exception handlers: every error a route raises leaves through ``rest_error``."""

    @app.exception_handler(TailorError)
    async def tailor_error(request: Request, err: TailorError) -> Response:
        if isinstance(err, AuthError):  # any route: readable by boto3 and by REST clients
            return aws_error(err, rest_envelope=True)
        if err.http_status >= 500:
            log.error("%s %s failed: %s: %s", request.method, request.url.path, type(err).__name__, err)
        return rest_error(err)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return rest_error(ValidationError(f"{where}: {first['msg']}" if where else str(first["msg"])))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(err.status_code, "HTTPError")
        return JSONResponse({"error": {"code": code, "message": str(err.detail)}}, status_code=err.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("%s %s crashed", request.method, request.url.path)
        return rest_error(InternalError(str(err)))
