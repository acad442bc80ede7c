"""Routes of the web console.

The page and its assets (``/console``, ``/console/static/<file>``) are public: they hold no data. Everything
the page shows comes from API routes that check the signed-in key's policy: the REST routes of each resource,
and the console's own JSON routes below (each wrapped by ``require``), which add what the page needs in one
request, such as a jobs page with its key metrics. What they add about one resource passes that resource's own
check, as its REST route would: a job's metrics need DescribeTrainingJob on the job's ARN.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from sqlalchemy import func, select

from tailor.api.deps import get_tailor, require
from tailor.api.hosting import endpoint_arn
from tailor.core import Tailor
from tailor.errors import NotFoundError
from tailor.hosting.store import EndpointConfigRow, EndpointRow, ModelRow
from tailor.jobs.store import MetricPointRow, TrainingJobRow

STATIC = Path(__file__).with_name("static")
# Served by name from this fixed set only: no path from the request ever reaches the filesystem.
_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".html": "text/html"}
_ASSETS = {p.name: p for p in STATIC.iterdir() if p.suffix in _MEDIA_TYPES}
# Key metrics shown in the jobs list, in column order; other metrics stay on the job page.
KEY_METRICS = ("validation:accuracy", "train:accuracy", "train:loss")

router = APIRouter(tags=["console"], include_in_schema=False)


@router.get("/console")
def console_redirect() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=307)


@router.get("/console/")
def console_page() -> FileResponse:
    # no-cache: a new server version must not run against an old cached page.
    return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/console/static/{name}")
def console_asset(name: str) -> FileResponse:
    path = _ASSETS.get(name)
    if path is None:
        raise NotFoundError(f"console asset {name!r} does not exist")
    return FileResponse(path, media_type=_MEDIA_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})


@router.get("/console/api/whoami")
def whoami(request: Request) -> JSONResponse:
    """Who the bearer token belongs to. Like STS GetCallerIdentity this needs authentication, no permission:
    a key whose policy allows nothing can still sign in and see plainly that every page is denied."""
    principal = request.app.state.authorizer.authenticate(request)
    return JSONResponse({"UserName": principal.name, "AccessKeyId": principal.access_key_id, "Arn": principal.arn})


@router.get("/console/api/training-jobs", dependencies=[Depends(require("sagemaker:ListTrainingJobs"))])
def training_jobs_page(
    request: Request,
    tailor: Tailor = Depends(get_tailor),
    name_contains: str | None = Query(None, alias="NameContains"),
    status_equals: str | None = Query(None, alias="StatusEquals"),
    sort_by: str = Query("CreationTime", alias="SortBy"),
    sort_order: str = Query("Descending", alias="SortOrder"),
    max_results: int = Query(25, alias="MaxResults"),
    next_token: str | None = Query(None, alias="NextToken"),
) -> JSONResponse:
    """One page of ListTrainingJobs, plus the job counts per status, each summary with its key metrics when the
    caller may DescribeTrainingJob that job.

    The summaries and counts are what ListTrainingJobs shows over REST and boto3 (on AWS it has no resource-level
    permission); metrics belong to DescribeTrainingJob, so a job whose ARN the policy does not allow (or denies)
    gets ``KeyMetrics: null``, as its REST metrics route would answer 403."""
    page = tailor.jobs.list(
        NameContains=name_contains or None,
        StatusEquals=status_equals or None,
        SortBy=sort_by,
        SortOrder=sort_order,
        MaxResults=max_results,
        NextToken=next_token or None,
    )
    authorizer = request.app.state.authorizer
    summaries = page["TrainingJobSummaries"]
    visible = {
        s["TrainingJobName"]
        for s in summaries
        if authorizer.allows(request, "sagemaker:DescribeTrainingJob", s["TrainingJobArn"])
    }
    metrics = key_metrics(tailor, sorted(visible))
    for s in summaries:
        s["KeyMetrics"] = metrics.get(s["TrainingJobName"], {}) if s["TrainingJobName"] in visible else None
    page["StatusCounts"] = tailor.jobs.counts_by_status()
    return JSONResponse(jsonable_encoder(page))


def key_metrics(tailor: Tailor, names: list[str]) -> dict[str, dict[str, float]]:
    """Final metrics of finished jobs, the latest value of running ones: two indexed queries per page, so a
    page costs the same with 1,000 jobs in the table as with 10."""
    if not names:
        return {}
    out: dict[str, dict[str, float]] = {}
    with tailor.db.session() as s:
        for name, final in s.execute(
            select(TrainingJobRow.name, TrainingJobRow.final_metrics).where(TrainingJobRow.name.in_(names))
        ):
            picked = {m["MetricName"]: m["Value"] for m in final or [] if m.get("MetricName") in KEY_METRICS}
            if picked:
                out[name] = picked
        pending = [n for n in names if n not in out]
        if pending:
            latest = (
                select(func.max(MetricPointRow.id))
                .where(MetricPointRow.job_name.in_(pending), MetricPointRow.name.in_(KEY_METRICS))
                .group_by(MetricPointRow.job_name, MetricPointRow.name)
            )
            rows = s.execute(
                select(MetricPointRow.job_name, MetricPointRow.name, MetricPointRow.value).where(
                    MetricPointRow.id.in_(latest)
                )
            )
            for job, metric, value in rows:
                out.setdefault(job, {})[metric] = value
    return out


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


@router.get("/console/api/models", dependencies=[Depends(require("sagemaker:ListModels"))])
def models_page(
    request: Request,
    tailor: Tailor = Depends(get_tailor),
    max_results: int = Query(100, alias="MaxResults"),
    next_token: str | None = Query(None, alias="NextToken"),
) -> JSONResponse:
    """One page of ListModels, each with what the list shows: the training job that made its artifact, input
    shape, classes, size on disk and the endpoints serving it (job and endpoint names only for a key that may
    list those)."""
    page = tailor.hosting.list_models(MaxResults=max_results, NextToken=next_token or None)
    names = [m["ModelName"] for m in page["Models"]]
    allows = request.app.state.authorizer.allows
    show_jobs = allows(request, "sagemaker:ListTrainingJobs", None)
    show_endpoints = allows(request, "sagemaker:ListEndpoints", None)
    with tailor.db.session() as s:
        rows = {r.name: r for r in s.scalars(select(ModelRow).where(ModelRow.name.in_(names)))}
        urls = [r.spec["PrimaryContainer"]["ModelDataUrl"] for r in rows.values()]
        jobs: dict[str, str] = {}
        if show_jobs and urls:
            made = select(TrainingJobRow.model_artifact, TrainingJobRow.name)
            jobs = {url: job for url, job in s.execute(made.where(TrainingJobRow.model_artifact.in_(urls)))}
        serving: dict[str, set[str]] = {}
        if show_endpoints:
            variants = {c.name: c.variants for c in s.scalars(select(EndpointConfigRow))}
            for endpoint, config in s.execute(select(EndpointRow.name, EndpointRow.config_name)):
                for v in variants.get(config, []):
                    serving.setdefault(v.get("ModelName", ""), set()).add(endpoint)
    for m in page["Models"]:
        row = rows.get(m["ModelName"])
        if row is None:  # deleted between the two reads
            continue
        # What a model holds (shape, classes) is DescribeModel's answer: only for keys allowed it on this model.
        meta = (row.model_json or {}) if allows(request, "sagemaker:DescribeModel", m["ModelArn"]) else {}
        m["SourceTrainingJob"] = jobs.get(row.spec["PrimaryContainer"]["ModelDataUrl"])
        m["ImageShape"] = meta.get("image_shape")
        m["NumClasses"] = meta.get("num_classes")
        m["ClassNames"] = meta.get("class_names")
        m["SizeBytes"] = _dir_bytes(tailor.settings.models_dir / row.model_id) if meta else None
        m["Endpoints"] = sorted(serving.get(m["ModelName"], ())) if show_endpoints else None
    return JSONResponse(jsonable_encoder(page))


@router.get(
    "/console/api/endpoints/{name}/input",
    dependencies=[Depends(require("sagemaker:DescribeEndpoint", endpoint_arn))],
)
def endpoint_input(name: str, tailor: Tailor = Depends(get_tailor)) -> JSONResponse:
    """The input the endpoint's models expect (``image_shape`` of each variant's model), so the try-it box can
    show an image as the model will see it."""
    with tailor.db.session() as s:
        endpoint = s.get(EndpointRow, name)
        if endpoint is None:
            raise NotFoundError(f"Endpoint {name!r} does not exist")
        config = s.get(EndpointConfigRow, endpoint.config_name)
        models = [v.get("ModelName") for v in (config.variants if config else [])]
        rows = {r.name: r for r in s.scalars(select(ModelRow).where(ModelRow.name.in_(models)))}
    variants = [
        {"ModelName": m, "ImageShape": (rows[m].model_json or {}).get("image_shape")} for m in models if m in rows
    ]
    return JSONResponse({"EndpointName": name, "Variants": variants})
