"""REST routes for transform jobs under /api/v1/transform-jobs; thin translations over TransformJobService.

Each checks the same action on the same ARN as the SageMaker protocol (``sagemaker:CreateTransformJob`` … on
``transform-job/<name>``), and a remote caller's URIs obey the same ``s3://`` only policy.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from tailor.api.deps import get_tailor, list_filters, path_arn, require
from tailor.core import Tailor
from tailor.resources import NAME_PATTERN
from tailor.storage import check_remote_uris

router = APIRouter(prefix="/api/v1/transform-jobs", tags=["transform-jobs"])
transform_job_arn = path_arn("transform-job")


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(jsonable_encoder(data), status_code=status)


@router.post("")
def create_transform_job(
    request: Request, spec: dict[str, Any] = Body(...), tailor: Tailor = Depends(get_tailor)
) -> JSONResponse:
    name = spec.get("TransformJobName")
    arn = tailor.transform.arn(name) if isinstance(name, str) and re.fullmatch(NAME_PATTERN, name) else None
    request.app.state.authorizer.authorize(request, "sagemaker:CreateTransformJob", arn)
    check_remote_uris(spec)
    return _json(tailor.transform.create(spec), status=201)


@router.get("", dependencies=[Depends(require("sagemaker:ListTransformJobs"))])
def list_transform_jobs(
    filters: dict[str, Any] = Depends(list_filters), tailor: Tailor = Depends(get_tailor)
) -> JSONResponse:
    return _json(tailor.transform.list(**filters))


@router.get("/{name}", dependencies=[Depends(require("sagemaker:DescribeTransformJob", transform_job_arn))])
def describe_transform_job(name: str, tailor: Tailor = Depends(get_tailor)) -> JSONResponse:
    return _json(tailor.transform.describe(name))


@router.post("/{name}/stop", dependencies=[Depends(require("sagemaker:StopTransformJob", transform_job_arn))])
def stop_transform_job(name: str, tailor: Tailor = Depends(get_tailor)) -> JSONResponse:
    return _json(tailor.transform.stop(name))
