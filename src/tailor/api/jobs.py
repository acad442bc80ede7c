"""REST routes for training jobs under /api/v1; thin translations over TrainingJobService."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from tailor.api.deps import follow_log, get_tailor, list_filters, own_code_grant, require, training_job_arn
from tailor.core import Tailor
from tailor.resources import NAME_PATTERN
from tailor.storage import check_remote_uris

router = APIRouter(prefix="/api/v1/training-jobs", tags=["training-jobs"])


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(jsonable_encoder(data), status_code=status)


@router.post("")
def create_training_job(
    request: Request, spec: dict[str, Any] = Body(...), tailor: Tailor = Depends(get_tailor)
) -> JSONResponse:
    # On the job's ARN, as the SageMaker protocol does, so a policy scoped to training-job/<prefix>* works here too.
    name = spec.get("TrainingJobName")
    arn = tailor.jobs.arn(name) if isinstance(name, str) and re.fullmatch(NAME_PATTERN, name) else None
    request.app.state.authorizer.authorize(request, "sagemaker:CreateTrainingJob", arn)
    check_remote_uris(spec)
    return _json(tailor.jobs.create(spec, authorize_own_code=own_code_grant(request)), status=201)


@router.get("", dependencies=[Depends(require("sagemaker:ListTrainingJobs"))])
def list_training_jobs(
    filters: dict[str, Any] = Depends(list_filters), tailor: Tailor = Depends(get_tailor)
) -> JSONResponse:
    return _json(tailor.jobs.list(**filters))


@router.get("/{name}", dependencies=[Depends(require("sagemaker:DescribeTrainingJob", training_job_arn))])
def describe_training_job(name: str, tailor: Tailor = Depends(get_tailor)) -> JSONResponse:
    return _json(tailor.jobs.describe(name))


@router.post("/{name}/stop", dependencies=[Depends(require("sagemaker:StopTrainingJob", training_job_arn))])
def stop_training_job(name: str, tailor: Tailor = Depends(get_tailor)) -> JSONResponse:
    return _json(tailor.jobs.stop(name))


@router.get("/{name}/logs", dependencies=[Depends(require("sagemaker:DescribeTrainingJob", training_job_arn))])
def training_job_logs(
    name: str,
    tailor: Tailor = Depends(get_tailor),
    offset: int = Query(0, ge=0),
    follow: bool = Query(False),
) -> Any:
    """JSON ``{Text, NextOffset, Complete}``; with ``follow=true`` a text/plain stream until the job ends."""
    if not follow:
        return _json(tailor.jobs.logs(name, offset))
    tailor.jobs.describe(name)  # 404 before the stream starts
    return follow_log(lambda pos: tailor.jobs.logs(name, pos), offset)


@router.get("/{name}/metrics", dependencies=[Depends(require("sagemaker:DescribeTrainingJob", training_job_arn))])
def training_job_metrics(
    name: str, tailor: Tailor = Depends(get_tailor), metric_name: str | None = Query(None, alias="MetricName")
) -> JSONResponse:
    return _json({"Metrics": tailor.jobs.metrics(name, metric_name)})


@router.get("/{name}/resources", dependencies=[Depends(require("sagemaker:DescribeTrainingJob", training_job_arn))])
def training_job_resources(name: str, tailor: Tailor = Depends(get_tailor)) -> JSONResponse:
    return _json({"Samples": tailor.jobs.resources(name)})
