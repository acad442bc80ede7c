"""REST routes for hyperparameter tuning jobs under /api/v1; thin translations over TuningService.

Authorization as the SageMaker protocol: each action on the tuning job's ARN
(``arn:aws:sagemaker:<region>:<account>:hyper-parameter-tuning-job/<name>``), List on none.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from tailor.api.deps import get_tailor, list_filters, own_code_grant, path_arn, require
from tailor.core import Tailor
from tailor.storage import check_remote_uris
from tailor.tuning.spec import TUNING_NAME_PATTERN

router = APIRouter(prefix="/api/v1/tuning-jobs", tags=["tuning-jobs"])
tuning_job_arn = path_arn("hyper-parameter-tuning-job")


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(jsonable_encoder(data), status_code=status)


@router.post("")
def create_tuning_job(
    request: Request, spec: dict[str, Any] = Body(...), tailor: Tailor = Depends(get_tailor)
) -> JSONResponse:
    name = spec.get("HyperParameterTuningJobName")
    arn = tailor.tuning.arn(name) if isinstance(name, str) and re.fullmatch(TUNING_NAME_PATTERN, name) else None
    request.app.state.authorizer.authorize(request, "sagemaker:CreateHyperParameterTuningJob", arn)
    check_remote_uris(spec)
    return _json(tailor.tuning.create(spec, authorize_own_code=own_code_grant(request)), status=201)


@router.get("", dependencies=[Depends(require("sagemaker:ListHyperParameterTuningJobs"))])
def list_tuning_jobs(
    filters: dict[str, Any] = Depends(list_filters), tailor: Tailor = Depends(get_tailor)
) -> JSONResponse:
    return _json(tailor.tuning.list(**filters))


@router.get("/{name}", dependencies=[Depends(require("sagemaker:DescribeHyperParameterTuningJob", tuning_job_arn))])
def describe_tuning_job(name: str, tailor: Tailor = Depends(get_tailor)) -> JSONResponse:
    return _json(tailor.tuning.describe(name))


@router.post("/{name}/stop", dependencies=[Depends(require("sagemaker:StopHyperParameterTuningJob", tuning_job_arn))])
def stop_tuning_job(name: str, tailor: Tailor = Depends(get_tailor)) -> JSONResponse:
    return _json(tailor.tuning.stop(name))


@router.get(
    "/{name}/training-jobs",
    dependencies=[Depends(require("sagemaker:ListTrainingJobsForHyperParameterTuningJob", tuning_job_arn))],
)
def tuning_job_trials(
    name: str,
    tailor: Tailor = Depends(get_tailor),
    status_equals: str | None = Query(None, alias="StatusEquals"),
    sort_by: str | None = Query(None, alias="SortBy"),
    sort_order: str | None = Query(None, alias="SortOrder"),
    max_results: int | None = Query(None, alias="MaxResults"),
    next_token: str | None = Query(None, alias="NextToken"),
) -> JSONResponse:
    return _json(
        tailor.tuning.list_training_jobs(
            name,
            StatusEquals=status_equals,
            SortBy=sort_by,
            SortOrder=sort_order,
            MaxResults=max_results,
            NextToken=next_token,
        )
    )
