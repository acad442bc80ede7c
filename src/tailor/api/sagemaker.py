"""SageMaker's control-plane protocol: ``POST /`` with ``X-Amz-Target: SageMaker.<Operation>``.

Wire format as botocore's ``sagemaker`` service model (2017-07-24, protocol ``json`` 1.1): the request body is
the operation's input structure, the response its output structure with timestamps as epoch seconds, errors
``{"__type": <code>, "message": …}`` with ``x-amzn-ErrorType``. So plain ``boto3.client("sagemaker",
endpoint_url=…)`` calls, paginators and waiters work. Each operation is a thin translation over the same
services the CLI, SDK and REST routes use.

Order of checks, so nothing is learnt or changed before the caller is known: authenticate, pick the operation,
parse the body, validate the resource name, authorize ``sagemaker:<Operation>`` on the resource's ARN, refuse
S3 URIs that could leave their bucket, then act. As on AWS, Describe/Delete of a missing resource answers
``ValidationException`` (400), which is what the ``endpoint_deleted`` waiter waits for.

Error codes per operation follow botocore's service model: an operation answers only the error shapes its model
lists (``OPERATION_ERRORS``: e.g. ``ResourceInUse`` for CreateTrainingJob, none for CreateModel) or AWS's common
JSON-protocol errors (auth, throttling, unknown operation, serialization, internal); any other client error is
``ValidationException`` (400), as SageMaker answers "Cannot create already existing model".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from tailor.api.auth import Authorizer
from tailor.api.deps import own_code_grant
from tailor.api.errors import AWS_JSON, aws_error
from tailor.api.limits import MAX_CONTROL_BODY_BYTES
from tailor.core import Tailor
from tailor.errors import (
    AuthError,
    InternalError,
    NotFoundError,
    PayloadTooLargeError,
    TailorError,
    ValidationError,
)
from tailor.json_input import parse_json
from tailor.resources import NAME_RE
from tailor.resources import arn as resource_arn
from tailor.storage import check_remote_uris

log = logging.getLogger("tailor.api.sagemaker")
router = APIRouter(tags=["sagemaker"])

CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "SageMaker."


# botocore/data/sagemaker/2017-07-24/service-2.json, ``operations.<name>.errors`` (tests compare the two).
OPERATION_ERRORS: dict[str, frozenset[str]] = {
    "CreateTrainingJob": frozenset({"ResourceNotFound", "ResourceInUse", "ResourceLimitExceeded"}),
    "DescribeTrainingJob": frozenset({"ResourceNotFound"}),
    "StopTrainingJob": frozenset({"ResourceNotFound"}),
    "CreateModel": frozenset({"ResourceLimitExceeded"}),
    "CreateEndpointConfig": frozenset({"ResourceLimitExceeded"}),
    "CreateEndpoint": frozenset({"ResourceLimitExceeded"}),
    "UpdateEndpoint": frozenset({"ResourceLimitExceeded"}),
    "CreateHyperParameterTuningJob": frozenset({"ResourceInUse", "ResourceLimitExceeded"}),
    "DescribeHyperParameterTuningJob": frozenset({"ResourceNotFound"}),
    "StopHyperParameterTuningJob": frozenset({"ResourceNotFound"}),
    "ListTrainingJobsForHyperParameterTuningJob": frozenset({"ResourceNotFound"}),
    "CreateTransformJob": frozenset({"ResourceInUse", "ResourceLimitExceeded", "ResourceNotFound"}),
    "DescribeTransformJob": frozenset({"ResourceNotFound"}),
    "StopTransformJob": frozenset({"ResourceNotFound"}),
}
# AWS's JSON-protocol errors that any operation may answer (not listed per operation in service models).
COMMON_ERRORS = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "ThrottlingException",
        "UnknownOperationException",
        "SerializationException",
        "ValidationException",
        "InternalFailure",
        "ServiceUnavailable",
    }
)


class UnknownOperationError(ValidationError):
    code = "UnknownOperationException"


class SerializationError(ValidationError):
    code = "SerializationException"


@dataclass(frozen=True)
class Operation:
    resource_type: str | None  # ARN type; None: the action has no resource-level permission (List*)
    name_member: str | None
    call: Callable[[Tailor, dict[str, Any]], dict[str, Any]]


def _host(method: str, *, name: str | None = None, empty: bool = False) -> Callable[[Tailor, dict], dict]:
    def call(tailor: Tailor, body: dict[str, Any]) -> dict[str, Any]:
        fn = getattr(tailor.hosting, method)
        out = fn(body[name]) if name else fn(body)
        return {} if empty else out

    return call


def _create_training_job(
    tailor: Tailor, body: dict[str, Any], authorize_own_code: Callable[[str], Any] | None = None
) -> dict[str, Any]:
    return {"TrainingJobArn": tailor.jobs.create(body, authorize_own_code=authorize_own_code)["TrainingJobArn"]}


def _create_tuning_job(
    tailor: Tailor, body: dict[str, Any], authorize_own_code: Callable[[str], Any] | None = None
) -> dict[str, Any]:
    created = tailor.tuning.create(body, authorize_own_code=authorize_own_code)
    return {"HyperParameterTuningJobArn": created["HyperParameterTuningJobArn"]}


_TUNING = "hyper-parameter-tuning-job"
_TUNING_NAME = "HyperParameterTuningJobName"
# Operations that may run a caller's own training code (they also need tailor:RunCustomCode for it).
_RUNS_CODE = ("CreateTrainingJob", "CreateHyperParameterTuningJob")

OPERATIONS: dict[str, Operation] = {
    "CreateTrainingJob": Operation("training-job", "TrainingJobName", _create_training_job),
    "DescribeTrainingJob": Operation(
        "training-job", "TrainingJobName", lambda t, b: t.jobs.describe(b["TrainingJobName"])
    ),
    "ListTrainingJobs": Operation(None, None, lambda t, b: t.jobs.list(b)),
    "StopTrainingJob": Operation(
        "training-job", "TrainingJobName", lambda t, b: (t.jobs.stop(b["TrainingJobName"]), {})[1]
    ),
    "CreateModel": Operation("model", "ModelName", _host("create_model")),
    "DescribeModel": Operation("model", "ModelName", _host("describe_model", name="ModelName")),
    "DeleteModel": Operation("model", "ModelName", _host("delete_model", name="ModelName", empty=True)),
    "ListModels": Operation(None, None, _host("list_models")),
    "CreateEndpointConfig": Operation("endpoint-config", "EndpointConfigName", _host("create_endpoint_config")),
    "DescribeEndpointConfig": Operation(
        "endpoint-config", "EndpointConfigName", _host("describe_endpoint_config", name="EndpointConfigName")
    ),
    "DeleteEndpointConfig": Operation(
        "endpoint-config", "EndpointConfigName", _host("delete_endpoint_config", name="EndpointConfigName", empty=True)
    ),
    "CreateEndpoint": Operation("endpoint", "EndpointName", _host("create_endpoint")),
    "DescribeEndpoint": Operation("endpoint", "EndpointName", _host("describe_endpoint", name="EndpointName")),
    "UpdateEndpoint": Operation("endpoint", "EndpointName", _host("update_endpoint")),
    "DeleteEndpoint": Operation("endpoint", "EndpointName", _host("delete_endpoint", name="EndpointName", empty=True)),
    "ListEndpoints": Operation(None, None, _host("list_endpoints")),
    "CreateHyperParameterTuningJob": Operation(_TUNING, _TUNING_NAME, _create_tuning_job),
    "DescribeHyperParameterTuningJob": Operation(
        _TUNING, _TUNING_NAME, lambda t, b: t.tuning.describe(b[_TUNING_NAME])
    ),
    "ListHyperParameterTuningJobs": Operation(None, None, lambda t, b: t.tuning.list(b)),
    "StopHyperParameterTuningJob": Operation(
        _TUNING, _TUNING_NAME, lambda t, b: (t.tuning.stop(b[_TUNING_NAME]), {})[1]
    ),
    "ListTrainingJobsForHyperParameterTuningJob": Operation(
        _TUNING, _TUNING_NAME, lambda t, b: t.tuning.list_training_jobs(b[_TUNING_NAME], b)
    ),
    "CreateTransformJob": Operation("transform-job", "TransformJobName", lambda t, b: t.transform.create(b)),
    "DescribeTransformJob": Operation(
        "transform-job", "TransformJobName", lambda t, b: t.transform.describe(b["TransformJobName"])
    ),
    "ListTransformJobs": Operation(None, None, lambda t, b: t.transform.list(b)),
    "StopTransformJob": Operation(
        "transform-job", "TransformJobName", lambda t, b: t.transform.stop(b["TransformJobName"])
    ),
}


@router.post("/", include_in_schema=False)
async def sagemaker_protocol(request: Request) -> Response:
    try:
        return await _handle(request)
    except TailorError as err:
        if err.http_status >= 500:
            log.error("SageMaker %s failed: %s: %s", request.headers.get("x-amz-target"), type(err).__name__, err)
        return error_response(err, request.headers.get("x-amz-target", "").removeprefix(TARGET_PREFIX))
    except Exception:
        log.exception("SageMaker %s crashed", request.headers.get("x-amz-target"))
        return error_response(InternalError("unexpected server error"))


async def _handle(request: Request) -> Response:
    authorizer: Authorizer = request.app.state.authorizer
    authenticate = getattr(authorizer, "authenticate", None)
    if authenticate is not None:
        authenticate(request)
    target = request.headers.get("x-amz-target", "")
    op_name = target.removeprefix(TARGET_PREFIX)
    if not target.startswith(TARGET_PREFIX) or op_name not in OPERATIONS:
        raise UnknownOperationError(f"Unknown operation {target[:80]!r}: X-Amz-Target must be SageMaker.<Operation>")
    op = OPERATIONS[op_name]
    body = await _json_body(request)
    arn = None
    if op.resource_type is not None and op.name_member is not None:
        name = body.get(op.name_member)
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ValidationError(
                f"1 validation error detected: Value {name!r} at '{op.name_member}' failed to satisfy constraint: "
                f"Member must satisfy regular expression pattern: {NAME_RE.pattern}"
            )
        settings = request.app.state.settings
        arn = resource_arn(settings.region, settings.account_id, op.resource_type, name)
    authorizer.authorize(request, f"sagemaker:{op_name}", arn)
    check_remote_uris(body)
    tailor: Tailor = request.app.state.tailor
    extra = {"authorize_own_code": own_code_grant(request)} if op_name in _RUNS_CODE else {}
    result = await run_in_threadpool(op.call, tailor, body, **extra)
    return JSONResponse(to_wire(result), media_type=CONTENT_TYPE)


async def _json_body(request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_CONTROL_BODY_BYTES:
        raise PayloadTooLargeError(f"Request body is larger than {MAX_CONTROL_BODY_BYTES} bytes.")
    raw = await request.body()
    if len(raw) > MAX_CONTROL_BODY_BYTES:
        raise PayloadTooLargeError(f"Request body is larger than {MAX_CONTROL_BODY_BYTES} bytes.")
    if not raw.strip():
        return {}
    try:
        body = parse_json(raw, "Request body")
    except ValidationError as err:
        raise SerializationError(f"{err.message}.") from None
    if not isinstance(body, dict):
        raise SerializationError("Request body must be a JSON object.")
    return body


def to_wire(obj: Any) -> Any:
    """Service dicts → SageMaker JSON: datetimes as epoch seconds, None members dropped."""
    if isinstance(obj, datetime):
        return obj.timestamp()
    if isinstance(obj, dict):
        return {k: to_wire(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list | tuple):
        return [to_wire(v) for v in obj]
    return obj


def error_response(err: TailorError, operation: str = "") -> Response:
    """SageMaker's codes and statuses for ``operation``: auth 403, server errors 5xx, client errors 400 (a body
    over the limit 413) under a code the operation's model lists, else ``ValidationException``; not-found is
    ``ValidationException`` ("Requested resource not found" on AWS) for every operation."""
    if isinstance(err, AuthError) or err.http_status >= 500:
        return _aws(err)
    status = 413 if isinstance(err, PayloadTooLargeError) else 400
    if isinstance(err, NotFoundError):
        return _aws(_as(ValidationError, err), status)
    if err.code in COMMON_ERRORS or err.code in OPERATION_ERRORS.get(operation, frozenset()):
        return _aws(err, status)
    return _aws(_as(ValidationError, err), status)


def _aws(err: TailorError, status: int | None = None) -> Response:
    return aws_error(err, status, media_type=AWS_JSON)


def _as(cls: type[TailorError], err: TailorError) -> TailorError:
    return cls(err.message)
