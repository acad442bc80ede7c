"""The HTTP server: ``create_app(settings)`` builds a FastAPI app over one Tailor container.

Routers come from ``ROUTER_MODULES`` (each module exports ``router``); add yours there. Errors are translated
here and only here into one envelope ``{"error": {"code", "message"}}`` with the error's HTTP status; 5xx
details stay in the server log, never in the response. (The SageMaker-compatible routes render their own
``__type`` errors on their router.)
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from starlette.exceptions import HTTPException as StarletteHTTPException

from tailor.api.auth import install as install_auth
from tailor.api.deps import AllowAll
from tailor.api.limits import ControlBodyLimit
from tailor.core import Tailor
from tailor.errors import InternalError, TailorError
from tailor.settings import Settings

log = logging.getLogger("tailor.api")

# Modules exporting `router` (an APIRouter); each is included once. Other domains append theirs.
ROUTER_MODULES: list[str] = ["tailor.api.jobs", "tailor.api.sagemaker", "tailor.api.console", "tailor.api.hosting"]
# The policy action that reads /metrics (Resource "*"); "*" and "tailor:*" include it, "sagemaker:*" does not.
METRICS_ACTION = "tailor:GetMetrics"


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.tailor = Tailor.open(settings)
        app.state.tailor.hosting.serve()  # relaunch InService endpoints' workers, restart crashed ones
        try:
            yield
        finally:
            app.state.tailor.close()

    # No /docs or /redoc: FastAPI's Swagger UI and ReDoc pages load their scripts from a CDN. The schema itself
    # is opt-in (settings.openapi_schema) and then served to authenticated callers only (below).
    app = FastAPI(title="Tailor", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.authorizer = AllowAll()
    app.state.metrics_registry = CollectorRegistry()
    app.state.metrics_registry.register(_JobCollector(app))
    app.state.metrics_registry.register(importlib.import_module("tailor.api.hosting").HostingCollector(app))
    _install_error_handlers(app)
    # Closed by default: SigV4 or bearer tokens, then IAM-style policies (replaces the AllowAll above).
    # Inside authentication (added before it): InvokeEndpoint is answered without FastAPI's route matching.
    app.add_middleware(importlib.import_module("tailor.api.hosting").InvocationFastPath)
    install_auth(app, settings)
    # Outermost: control-plane bodies over 1 MiB are refused before authentication reads them.
    app.add_middleware(ControlBodyLimit)
    for name in ROUTER_MODULES:
        app.include_router(importlib.import_module(name).router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> PlainTextResponse:
        """Prometheus text. It names endpoints, jobs and workers, so it needs a caller allowed
        ``tailor:GetMetrics`` (a bearer token in Prometheus' ``authorization``) unless ``metrics_public``."""
        if not settings.metrics_public:
            app.state.authorizer.authorize(request, METRICS_ACTION, None)
        return PlainTextResponse(generate_latest(app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)

    if settings.openapi_schema:

        @app.get("/openapi.json", include_in_schema=False)
        def openapi_schema(request: Request) -> JSONResponse:
            # Any authenticated caller, like whoami: the schema holds no data, only the API's shape.
            app.state.authorizer.authenticate(request)
            return JSONResponse(app.openapi())

    return app


def error_response(err: TailorError) -> JSONResponse:
    message = err.message if err.expose and err.http_status < 500 else _public_message(err)
    return JSONResponse({"error": {"code": err.code, "message": message}}, status_code=err.http_status)


def _public_message(err: TailorError) -> str:
    # 5xx: the message may name paths or hosts of the server; the client gets the class of failure only.
    return "the server failed to complete the request; see the server log"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TailorError)
    async def tailor_error(request: Request, err: TailorError) -> JSONResponse:
        if err.http_status >= 500:
            log.error("%s %s failed: %s: %s", request.method, request.url.path, type(err).__name__, err)
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        msg = f"{where}: {first['msg']}" if where else str(first["msg"])
        return JSONResponse({"error": {"code": "ValidationException", "message": msg}}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(err.status_code, "HTTPError")
        return JSONResponse({"error": {"code": code, "message": str(err.detail)}}, status_code=err.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("%s %s crashed", request.method, request.url.path)
        return error_response(InternalError(str(err)))


class _JobCollector:
    """Prometheus gauges computed at scrape time from the job table."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self):  # noqa: ANN201 - prometheus_client's collector protocol
        tailor: Tailor | None = getattr(self.app.state, "tailor", None)
        jobs = GaugeMetricFamily("tailor_training_jobs", "Training jobs by TrainingJobStatus", labels=["status"])
        if tailor is not None:
            for status, count in tailor.jobs.counts_by_status().items():
                jobs.add_metric([status], count)
        yield jobs
