"""The HTTP server: ``create_app(settings)`` builds a FastAPI app over one Tailor container.

Each router module (REST jobs and hosting, the SageMaker protocol, the console) exports ``router``; errors
leave through ``tailor.api.errors``, the one place they become responses (5xx details stay in the server log).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from tailor.api import console, errors, hosting, jobs, sagemaker, transform, tuning
from tailor.api.auth import install as install_auth
from tailor.api.deps import AllowAll
from tailor.api.limits import ControlBodyLimit
from tailor.core import Tailor
from tailor.settings import Settings

log = logging.getLogger("tailor.api")

ROUTER_MODULES = (jobs, sagemaker, console, hosting, tuning, transform)  # each exports `router`, included once
# The policy action that reads /metrics (Resource "*"); "*" and "tailor:*" include it, "sagemaker:*" does not.
METRICS_ACTION = "tailor:GetMetrics"


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.tailor = Tailor.open(settings, serve=True)
        # relaunch InService endpoints' workers, restart crashed ones; on a shared database, take over too
        app.state.tailor.serve()
        try:
            yield
        finally:
            app.state.tailor.close()

    # No /docs or /redoc: FastAPI's Swagger UI and ReDoc pages load their scripts from a CDN. The schema itself
    # is opt-in (settings.openapi_schema) and then served to authenticated callers only (below).
    app = TailorApp(title="Tailor", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.authorizer = AllowAll()
    app.state.metrics_registry = CollectorRegistry()
    app.state.metrics_registry.register(_JobCollector(app))
    app.state.metrics_registry.register(hosting.HostingCollector(app))
    errors.install(app)
    # Closed by default: SigV4 or bearer tokens, then IAM-style policies (replaces the AllowAll above).
    install_auth(app, settings)
    # InvokeEndpoint is answered in front of the middleware stack and routing, through the same authentication.
    app.front = hosting.InvocationFront(app, app.state.keys, settings)
    # Outermost: control-plane bodies over 1 MiB are refused before authentication reads them.
    app.add_middleware(ControlBodyLimit)
    for module in ROUTER_MODULES:
        app.include_router(module.router)

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


class TailorApp(FastAPI):
    """FastAPI, with ``POST /endpoints/{name}/invocations`` handed to ``front`` (``hosting.InvocationFront``)."""

    front: hosting.InvocationFront | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.front is not None and self.front.match(scope) is not None:
            await self.front(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


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
