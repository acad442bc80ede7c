"""REST routes for models, endpoint configs and endpoints under /api/v1, and the runtime invocation route.

``POST /endpoints/{name}/invocations`` is SageMaker Runtime's InvokeEndpoint path (boto3's ``sagemaker-runtime``
client calls it as is): the body goes to a model worker chosen by the router; the answer carries
``x-Amzn-Invoked-Production-Variant``. Its errors use AWS's shape (``__type``, ``message``, header
``x-amzn-ErrorType``) as well as the REST envelope, since boto3 reads the former. Its codes are those botocore's
``sagemaker-runtime`` model lists for InvokeEndpoint: every client error is ``ValidationError`` (400), a missing
endpoint too ("Endpoint X of account Y not found.", as SageMaker words it); a body over 6 MB and an unsupported
media type keep their HTTP statuses (413, 415) under the same code; ``ModelError`` 424, 429, 503 and 500 keep
their own; auth failures stay 403.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from tailor import errors
from tailor.api.deps import follow_log, get_tailor, list_filters, path_arn, remote_spec, require
from tailor.api.errors import aws_error_parts
from tailor.api.limits import INVOCATION_PATH
from tailor.asgi import content_length, read_body
from tailor.core import Tailor
from tailor.errors import InternalError, NotFoundError, TailorError, ValidationError
from tailor.resources import arn
from tailor.serving.preprocess import MAX_BODY_BYTES

log = logging.getLogger("tailor.api.hosting")
router = APIRouter(tags=["hosting"])
API = "/api/v1"


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(jsonable_encoder(data), status_code=status)


model_arn, config_arn, endpoint_arn = path_arn("model"), path_arn("endpoint-config"), path_arn("endpoint")


# -- models ---------------------------------------------------------------------------------------------
@router.post(f"{API}/models", dependencies=[Depends(require("sagemaker:CreateModel"))])
def create_model(spec: dict[str, Any] = Depends(remote_spec), tailor: Tailor = Depends(get_tailor)) -> JSONResponse:
    return _json(tailor.hosting.create_model(spec), 201)


@router.get(f"{API}/models", dependencies=[Depends(require("sagemaker:ListModels"))])
def list_models(filters: dict[str, Any] = Depends(list_filters), tailor: Tailor = Depends(get_tailor)) -> JSONResponse:
    return _json(tailor.hosting.list_models(filters))


@router.get(f"{API}/models/{{name}}", dependencies=[Depends(require("sagemaker:DescribeModel", model_arn))])
def describe_model(name: str, tailor: Tailor = Depends(get_tailor)) -> JSONResponse:
    return _json(tailor.hosting.describe_model(name))


@router.delete(f"{API}/models/{{name}}", dependencies=[Depends(require("sagemaker:DeleteModel", model_arn))])
def delete_model(name: str, tailor: Tailor = Depends(get_tailor)) -> JSONResponse:
    return _json(tailor.hosting.delete_model(name))


# -- endpoint configs -----------------------------------------------------------------------------------
@router.post(f"{API}/endpoint-configs", dependencies=[Depends(require("sagemaker:CreateEndpointConfig"))])
def create_endpoint_config(
    spec: dict[str, Any] = Depends(remote_spec), tailor: Tailor = Depends(get_tailor)
) -> JSONResponse:
    return _json(tailor.hosting.create_endpoint_config(spec), 201)


@router.get(f"{API}/endpoint-configs", dependencies=[Depends(require("sagemaker:ListEndpointConfigs"))])
def list_endpoint_configs(
    filters: dict[str, Any] = Depends(list_filters), tailor: Tailor = Depends(get_tailor)
) -> JSONResponse:
    return _json(tailor.hosting.list_endpoint_configs(filters))


@router.get(
    f"{API}/endpoint-configs/{{name}}", dependencies=[Depends(require("sagemaker:DescribeEndpointConfig", config_arn))]
)
def describe_endpoint_config(name: str, tailor: Tailor = Depends(get_tailor)) -> JSONResponse:
    return _json(tailor.hosting.describe_endpoint_config(name))


@router.delete(
    f"{API}/endpoint-configs/{{name}}", dependencies=[Depends(require("sagemaker:DeleteEndpointConfig", config_arn))]
)
def delete_endpoint_config(name: str, tailor: Tailor = Depends(get_tailor)) -> JSONResponse:
    return _json(tailor.hosting.delete_endpoint_config(name))


# -- endpoints ------------------------------------------------------------------------------------------
@router.post(f"{API}/endpoints", dependencies=[Depends(require("sagemaker:CreateEndpoint"))])
def create_endpoint(spec: dict[str, Any] = Depends(remote_spec), tailor: Tailor = Depends(get_tailor)) -> JSONResponse:
    return _json(tailor.hosting.create_endpoint(spec), 201)


@router.get(f"{API}/endpoints", dependencies=[Depends(require("sagemaker:ListEndpoints"))])
def list_endpoints(
    filters: dict[str, Any] = Depends(list_filters), tailor: Tailor = Depends(get_tailor)
) -> JSONResponse:
    return _json(tailor.hosting.list_endpoints(filters))


@router.get(f"{API}/endpoints/{{name}}", dependencies=[Depends(require("sagemaker:DescribeEndpoint", endpoint_arn))])
def describe_endpoint(name: str, tailor: Tailor = Depends(get_tailor)) -> JSONResponse:
    return _json(tailor.hosting.describe_endpoint(name))


@router.post(
    f"{API}/endpoints/{{name}}/update", dependencies=[Depends(require("sagemaker:UpdateEndpoint", endpoint_arn))]
)
def update_endpoint(
    name: str, spec: dict[str, Any] = Depends(remote_spec), tailor: Tailor = Depends(get_tailor)
) -> JSONResponse:
    return _json(tailor.hosting.update_endpoint({**spec, "EndpointName": name}))


@router.delete(f"{API}/endpoints/{{name}}", dependencies=[Depends(require("sagemaker:DeleteEndpoint", endpoint_arn))])
def delete_endpoint(name: str, tailor: Tailor = Depends(get_tailor)) -> JSONResponse:
    return _json(tailor.hosting.delete_endpoint(name))


@router.get(
    f"{API}/endpoints/{{name}}/metrics", dependencies=[Depends(require("sagemaker:DescribeEndpoint", endpoint_arn))]
)
def endpoint_metrics(name: str, tailor: Tailor = Depends(get_tailor), since: str | None = Query(None)) -> JSONResponse:
    return _json(tailor.hosting.endpoint_metrics(name, since=since))


@router.get(
    f"{API}/endpoints/{{name}}/logs", dependencies=[Depends(require("sagemaker:DescribeEndpoint", endpoint_arn))]
)
def endpoint_logs(
    name: str,
    tailor: Tailor = Depends(get_tailor),
    offset: int = Query(0, ge=0),
    limit: int = Query(1 << 20, ge=1, le=1 << 20),
    follow: bool = Query(False),
) -> Any:
    """The endpoint's runtime log: JSON ``{Text, NextOffset, Complete}`` from logical byte ``offset`` (at most
    ``limit`` bytes, whole lines; page on with NextOffset); ``follow=true`` streams text/plain until the endpoint
    is deleted or the client leaves."""
    if not follow:
        return _json(tailor.hosting.endpoint_logs(name, offset, limit))
    tailor.hosting.endpoint_logs(name, offset, 1)  # 404 before the stream starts
    return follow_log(lambda pos: tailor.hosting.endpoint_logs(name, pos), offset)


# -- runtime --------------------------------------------------------------------------------------------
@router.post("/endpoints/{name}/invocations")
async def invoke_endpoint(name: str, request: Request) -> Response:
    """InvokeEndpoint (listed for the OpenAPI schema; ``InvocationFront`` answers it before routing)."""
    status, headers, body = await invoke(name, request.scope, request.receive)
    return Response(body, status_code=status, headers={k.decode(): v.decode("latin-1") for k, v in headers})


_ACCEPT_PARAMS = (b"verbose=", b"top_k=")


async def invoke(name: str, scope: dict[str, Any], receive: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Authorize (as ``require`` does), read the body (<= 6 MB), route to a worker; (status, headers, body).

    Plain ASGI, no Request/Response objects: one pass over the raw headers, the body read straight from
    ``receive``. Profiled with py-spy under wrk (16 connections): the Starlette objects and header mappings were
    a visible share of the server's ~0.3 ms of CPU per invocation.

    Every answer carries ``x-amzn-RequestId`` (botocore's ResponseMetadata.RequestId); a failed invocation of an
    existing endpoint is written with that id to the endpoint's runtime log.
    """
    request_id = str(uuid.uuid4())
    rid = (b"x-amzn-requestid", request_id.encode())
    content_type = accept = b""
    for k, v in scope["headers"]:
        if k == b"content-type":
            content_type = v
        elif k == b"accept":
            accept = v
    app = scope["app"]
    settings = app.state.settings
    try:
        endpoint = arn(settings.region, settings.account_id, "endpoint", name)
        scope.setdefault("path_params", {})["name"] = name
        app.state.authorizer.authorize(Request(scope, receive), "sagemaker:InvokeEndpoint", endpoint)
        body = await read_body(receive, content_length(scope["headers"]), MAX_BODY_BYTES)
        accept_s = accept.decode("latin-1")
        qs: bytes = scope.get("query_string", b"")
        if qs:
            extra = [p.decode("latin-1") for p in qs.split(b"&") if p.startswith(_ACCEPT_PARAMS)]
            if extra:
                accept_s = ";".join([accept_s.split(",")[0] or "application/json", *extra])
        result = await app.state.tailor.hosting.ainvoke(name, body, content_type.decode("latin-1"), accept_s)
    except TailorError as err:
        if err.http_status >= 500:
            log.warning("invoke %s: %s: %s", name, type(err).__name__, err)
        if not isinstance(err, errors.AuthError | NotFoundError | errors.PayloadTooLargeError):
            _log_failure(app, name, request_id, err.http_status, err.code, err.message)
        status, headers, body = aws_error_parts(runtime_error(err, name, settings.account_id), rest_envelope=True)
        return status, [*_without_id(headers), rid], body
    except Exception:
        log.exception("invoke %s crashed", name)
        _log_failure(app, name, request_id, 500, "InternalFailure", "unexpected error (see the server log)")
        status, headers, body = aws_error_parts(InternalError("unexpected error"), rest_envelope=True)
        return status, [*_without_id(headers), rid], body
    reply = result.reply
    variant = (b"x-amzn-invoked-production-variant", result.variant.encode("latin-1"))
    if reply.status >= 400:
        code, message = "ModelError", ""
        with contextlib.suppress(ValueError, AttributeError):
            err_body = json.loads(reply.body)
            code, message = str(err_body.get("__type", code)), str(err_body.get("message", ""))
        _log_failure(app, name, request_id, reply.status, code, message, result.variant)
    if reply.status == 400:  # the worker's own ValidationException (an undecodable image): SageMaker's code
        status, headers, body = aws_error_parts(
            InvocationError(message or "the request was not valid"), rest_envelope=True
        )
        return status, [*_without_id(headers), variant, rid], body
    headers = [(b"content-type", reply.content_type.encode("latin-1")), variant, rid]
    if reply.status >= 400:
        headers.append((b"x-amzn-errortype", code.encode("latin-1")))
    return reply.status, headers, reply.body


def _without_id(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The error shape's placeholder request id gives way to this invocation's own."""
    return [h for h in headers if h[0] != b"x-amzn-requestid"]


def _log_failure(app: Any, name: str, request_id: str, status: int, code: str, message: str, variant: str = "") -> None:
    """Into the endpoint's runtime log; a log that cannot be written never changes the caller's answer."""
    try:
        app.state.tailor.hosting.log_invocation_error(name, request_id, status, code, message, variant)
    except Exception:  # noqa: BLE001 - a full disk, a vanished directory
        log.warning("cannot write %s's runtime log", name, exc_info=True)


class InvocationError(ValidationError):
    """SageMaker Runtime's client error: code ``ValidationError`` (the control plane says ValidationException)."""

    code = "ValidationError"


# Errors InvokeEndpoint answers under their own code (botocore's sagemaker-runtime model, plus AWS's auth errors
# and ThrottlingException, which every AWS API may answer). 413 and 415 already say ValidationError.
_RUNTIME_OWN_CODES = (
    errors.AuthError,
    errors.ModelError,
    errors.ThrottlingError,
    errors.ServiceUnavailableError,
    errors.InternalError,
    errors.PayloadTooLargeError,
    errors.UnsupportedMediaTypeError,
)


def runtime_error(err: TailorError, name: str, account_id: str) -> TailorError:
    """A Tailor error as SageMaker Runtime's InvokeEndpoint answers it."""
    if isinstance(err, NotFoundError):
        return InvocationError(f"Endpoint {name} of account {account_id} not found.")
    if isinstance(err, _RUNTIME_OWN_CODES) or err.http_status >= 500:
        return err
    return InvocationError(err.message)


class InvocationFront:
    """InvokeEndpoint answered in front of the whole FastAPI app: authentication, then :func:`invoke`.

    ``TailorApp.__call__`` hands ``POST /endpoints/{name}/invocations`` here before Starlette's middleware stack
    (its error and body-limit layers) and FastAPI's routing run. The request meets the same
    ``AuthenticationMiddleware`` as every other route (SigV4 or bearer, the same key cache) and the same
    ``authorize`` call on the endpoint's ARN inside :func:`invoke`, so auth and policy answers are unchanged;
    errors keep their codes (invoke answers every exception itself).
    Why: profiled in-process (``python -m bench serving`` prints it), the layers skipped cost a measurable
    share of the server's per-invocation CPU (the run's figures are in ``tailor.serving.server``).
    """

    def __init__(self, app: Any, keys: Any, settings: Any) -> None:
        from tailor.api.auth import AuthenticationMiddleware

        self.app = app
        self.chain = AuthenticationMiddleware(self._invoke, keys=keys, settings=settings)

    @staticmethod
    def match(scope: dict[str, Any]) -> str | None:
        """The endpoint name of an InvokeEndpoint request, else None."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        path: str = scope["path"]
        if not (path.startswith("/endpoints/") and path.endswith("/invocations")):
            return None
        m = INVOCATION_PATH.match(path)
        return m.group(1) if m is not None else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["app"] = self.app  # invoke() reads settings, the authorizer and the container from app.state
        await self.chain(scope, receive, send)

    async def _invoke(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        name = self.match(scope)
        assert name is not None  # only matching requests are handed here
        status, headers, body = await invoke(name, scope, receive)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


# -- Prometheus -----------------------------------------------------------------------------------------
class HostingCollector:
    """Invocation counters and latency sums per endpoint and variant (since this server started)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def collect(self):  # noqa: ANN201 - prometheus_client's collector protocol
        tailor: Tailor | None = getattr(self.app.state, "tailor", None)
        labels = ["endpoint", "variant"]
        fams = {
            "invocations": CounterMetricFamily("tailor_endpoint_invocations", "Invocations", labels=labels),
            "errors_4xx": CounterMetricFamily("tailor_endpoint_invocation_4xx_errors", "4XX answers", labels=labels),
            "errors_5xx": CounterMetricFamily("tailor_endpoint_invocation_5xx_errors", "5XX answers", labels=labels),
            "model_latency_us": CounterMetricFamily(
                "tailor_endpoint_model_latency_microseconds", "Sum of ModelLatency", labels=labels
            ),
            "overhead_latency_us": CounterMetricFamily(
                "tailor_endpoint_overhead_latency_microseconds", "Sum of OverheadLatency", labels=labels
            ),
        }
        status = GaugeMetricFamily("tailor_endpoints", "Endpoints by EndpointStatus", labels=["status"])
        wlabels = ["endpoint", "variant", "worker"]
        batches = CounterMetricFamily("tailor_worker_batches", "Batches run by the model", labels=wlabels)
        images = CounterMetricFamily("tailor_worker_batched_images", "Images run in batches", labels=wlabels)
        mean = GaugeMetricFamily("tailor_worker_mean_batch_size", "Realised batch size (mean)", labels=wlabels)
        refused = CounterMetricFamily(
            "tailor_worker_refused_requests", "Requests refused: queue full (429) or deadline (503)", labels=wlabels
        )
        if tailor is not None:
            for (endpoint, variant), t in list(tailor.hosting.metrics.totals.items()):
                for key, fam in fams.items():
                    fam.add_metric([endpoint, variant], getattr(t, key))
            counts: dict[str, int] = {}
            for e in tailor.hosting.list_endpoints(MaxResults=100)["Endpoints"]:
                counts[e["EndpointStatus"]] = counts.get(e["EndpointStatus"], 0) + 1
            for s, n in counts.items():
                status.add_metric([s], n)
            for w in tailor.hosting.worker_stats():
                key = [w["EndpointName"], w["VariantName"], w["WorkerId"]]
                batches.add_metric(key, w["batches"])
                images.add_metric(key, w["images"])
                mean.add_metric(key, w["mean_batch_size"])
                refused.add_metric(key, w["throttled"] + w["expired"])
        capture = CounterMetricFamily(
            "tailor_data_capture_records",
            "Data capture records: captured (queued), dropped (queue full), written, in failed writes",
            labels=["state"],
        )
        if tailor is not None:
            stats = tailor.hosting.capture.stats()
            for state in ("captured", "dropped", "written", "failed"):
                capture.add_metric([state], stats[state])
        yield from fams.values()
        yield from (status, batches, images, mean, refused, capture)
