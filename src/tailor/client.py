"""The Python SDK: one interface, in-process (embedded) or over HTTP to a Tailor server.

    client = tailor.Client()                             # embedded: jobs run in this process
    client = tailor.Client(url="http://127.0.0.1:8023")  # a server
    job = client.create_training_job(TrainingJobName="fmnist-1", ...)   # CreateTrainingJob shape
    job.wait(logs=True); job.metrics(); job.describe()["ModelArtifacts"]

Both modes return the same shapes (SageMaker's, with ``datetime`` values). Every HTTP call goes through
``Client._request``, the one place to add request signing.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import IO, Any

from tailor.algorithms.image_classification import ALGORITHM as IMAGE_CLASSIFICATION
from tailor.errors import (
    ConflictError,
    InternalError,
    NotFoundError,
    ServiceUnavailableError,
    TailorError,
    ValidationError,
)
from tailor.settings import Settings, load_settings

TERMINAL = ("Completed", "Failed", "Stopped")
# What the SDK's create_training_job runs when the request names no algorithm.
BUILTIN_ALGORITHM = {"TrainingImage": IMAGE_CLASSIFICATION.image, "TrainingInputMode": "File"}
_TIME_KEYS = {
    "CreationTime",
    "LastModifiedTime",
    "TrainingStartTime",
    "TrainingEndTime",
    "StartTime",
    "EndTime",
    "Timestamp",
    "HyperParameterTuningEndTime",
    "TransformStartTime",
    "TransformEndTime",
}


def _error_class(code: str, status: int) -> type[TailorError]:
    """The local error class for an HTTP error envelope, so both modes raise the same exceptions."""
    if status == 404:
        return NotFoundError
    if status == 409:
        return ConflictError
    if status in (400, 413, 415):
        return ValidationError
    if status == 503:
        return ServiceUnavailableError
    import tailor.errors as errors

    for cls in vars(errors).values():
        if isinstance(cls, type) and issubclass(cls, TailorError) and cls.code == code and cls.http_status == status:
            return cls
    return errors.AuthError if status in (401, 403) else InternalError


def _revive(obj: Any) -> Any:
    """ISO strings back to datetimes for the time keys of SageMaker shapes."""
    if isinstance(obj, dict):
        return {
            k: (datetime.fromisoformat(v) if k in _TIME_KEYS and isinstance(v, str) else _revive(v))
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_revive(v) for v in obj]
    return obj


class TrainingJob:
    """A handle on one training job."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name

    def __repr__(self) -> str:
        return f"TrainingJob({self.name!r})"

    def describe(self) -> dict[str, Any]:
        return self.client.describe_training_job(self.name)

    @property
    def status(self) -> str:
        return self.describe()["TrainingJobStatus"]

    def stop(self) -> dict[str, Any]:
        return self.client.stop_training_job(self.name)

    def metrics(self, name: str | None = None) -> list[dict[str, Any]]:
        return self.client.training_job_metrics(self.name, name)

    def resources(self) -> list[dict[str, Any]]:
        return self.client.training_job_resources(self.name)

    def logs(self, offset: int = 0) -> str:
        """The log text from a byte offset (everything written so far)."""
        out, pos = [], offset
        while True:
            chunk = self.client.training_job_logs(self.name, pos)
            out.append(chunk["Text"])
            if not chunk["Text"] or chunk["NextOffset"] == pos:
                return "".join(out)
            pos = chunk["NextOffset"]

    def wait(
        self, logs: bool = False, timeout: float | None = None, poll: float = 0.5, out: IO[str] | None = None
    ) -> dict[str, Any]:
        """Block until the job ends (or ``timeout`` seconds); with ``logs`` stream its log to ``out`` (stdout)."""
        out = out or sys.stdout
        deadline = None if timeout is None else time.monotonic() + timeout
        pos = 0
        while True:
            if logs:
                chunk = self.client.training_job_logs(self.name, pos)
                pos = chunk["NextOffset"]
                if chunk["Text"]:
                    out.write(chunk["Text"])
                    out.flush()
                    continue
                if chunk["Complete"]:
                    return self.describe()
            else:
                desc = self.describe()
                if desc["TrainingJobStatus"] in TERMINAL:
                    return desc
            if deadline is not None and time.monotonic() >= deadline:
                return self.describe()
            time.sleep(poll)


class Client:
    def __init__(self, url: str | None = None, *, settings: Settings | None = None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/") if url else None
        self.timeout = timeout
        self._tailor: Any = None
        self._http: Any = None
        self._credentials: Any = None
        self._credentials_path: Any = None
        if self.url is None:
            from tailor.core import Tailor

            self._tailor = Tailor.open(settings or load_settings())
        else:
            import httpx

            from tailor.auth.keys import resolve_credentials

            resolved = settings or load_settings()
            # SigV4 credentials: settings / TAILOR_ACCESS_KEY_ID+TAILOR_SECRET_ACCESS_KEY, else the profile file.
            self._credentials = resolve_credentials(resolved)
            self._credentials_path = resolved.credentials_path
            self._region = resolved.region
            self._http = httpx.Client(base_url=self.url, timeout=timeout)

    # -- plumbing ------------------------------------------------------------------------------------
    @property
    def embedded(self) -> bool:
        return self._tailor is not None

    @property
    def tailor(self) -> Any:
        """The embedded Tailor container (in-process mode only)."""
        if self._tailor is None:
            raise ValidationError("this client talks to a server; the Tailor container exists only in-process")
        return self._tailor

    def _request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        import httpx

        params = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            resp = self._http.send(self._signed(self._http.build_request(method, path, json=json, params=params)))
        except httpx.HTTPError as err:
            raise ServiceUnavailableError(f"cannot reach the Tailor server at {self.url}: {err}") from None
        if resp.status_code >= 400:
            try:
                body = resp.json()
                # REST envelope {"error": {...}}, or AWS's {"__type", "message"} from the auth layer.
                error = body["error"] if "error" in body else {"code": body["__type"], "message": body["message"]}
                code, message = error["code"], error["message"]
            except (ValueError, KeyError, TypeError):
                code, message = "HTTPError", resp.text[:200] or resp.reason_phrase
            raise _error_class(code, resp.status_code)(self._with_hint(code, message))
        return _revive(resp.json())

    def _with_hint(self, code: str, message: str) -> str:
        """An unsigned request refused for want of a key: say where a key was looked for and how to make one."""
        if code != "MissingAuthenticationTokenException" or self._credentials is not None or self.embedded:
            return message
        return (
            f"{message.rstrip('.')}; this client has no access key (TAILOR_ACCESS_KEY_ID and "
            f"TAILOR_SECRET_ACCESS_KEY unset, no {self._credentials_path}): run `tailor server init` with the "
            "server's TAILOR_HOME to write that file"
        )

    def _signed(self, request: Any) -> Any:
        """Sign with SigV4 (service ``sagemaker``) when credentials are configured; the server refuses otherwise."""
        if self._credentials is None:
            return request
        from tailor.auth import sigv4

        content_type = request.headers.get("content-type")
        signed = sigv4.sign(
            method=request.method,
            url=str(request.url),
            headers={"Content-Type": content_type} if content_type else {},
            body=request.read(),
            access_key_id=self._credentials.access_key_id,
            secret=self._credentials.secret_access_key,
            region=self._region,
        )
        request.headers.update(signed)
        return request

    def close(self) -> None:
        if self._tailor is not None:
            self._tailor.close()
            self._tailor = None
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- training jobs -------------------------------------------------------------------------------
    def create_training_job(self, spec: dict[str, Any] | None = None, **kwargs: Any) -> TrainingJob:
        """CreateTrainingJob: a spec dict and/or its members as keyword arguments (keywords win).

        Without ``AlgorithmSpecification`` the job runs the built-in algorithm (``BUILTIN_ALGORITHM``); the
        SageMaker-compatible API, like SageMaker's, requires it.
        """
        body = {**(spec or {}), **kwargs}
        body.setdefault("AlgorithmSpecification", dict(BUILTIN_ALGORITHM))
        if self.embedded:
            desc = self._tailor.jobs.create(body)
        else:
            desc = self._request("POST", "/api/v1/training-jobs", json=body)
        return TrainingJob(self, desc["TrainingJobName"])

    def training_job(self, name: str) -> TrainingJob:
        self.describe_training_job(name)
        return TrainingJob(self, name)

    def describe_training_job(self, name: str) -> dict[str, Any]:
        if self.embedded:
            return self._tailor.jobs.describe(name)
        return self._request("GET", f"/api/v1/training-jobs/{name}")

    def list_training_jobs(self, **filters: Any) -> dict[str, Any]:
        """ListTrainingJobs: NameContains, StatusEquals, CreationTime*/LastModifiedTime*, SortBy, SortOrder,
        MaxResults, NextToken."""
        if self.embedded:
            return self._tailor.jobs.list(**filters)
        params = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in filters.items()}
        return self._request("GET", "/api/v1/training-jobs", params=params)

    def stop_training_job(self, name: str) -> dict[str, Any]:
        if self.embedded:
            return self._tailor.jobs.stop(name)
        return self._request("POST", f"/api/v1/training-jobs/{name}/stop")

    def training_job_logs(self, name: str, offset: int = 0) -> dict[str, Any]:
        """``{Text, NextOffset, Complete}``: the log from a byte offset; Complete once the job ended."""
        if self.embedded:
            return self._tailor.jobs.logs(name, offset)
        return self._request("GET", f"/api/v1/training-jobs/{name}/logs", params={"offset": offset})

    def training_job_metrics(self, name: str, metric_name: str | None = None) -> list[dict[str, Any]]:
        if self.embedded:
            return self._tailor.jobs.metrics(name, metric_name)
        params = {"MetricName": metric_name}
        return self._request("GET", f"/api/v1/training-jobs/{name}/metrics", params=params)["Metrics"]

    def training_job_resources(self, name: str) -> list[dict[str, Any]]:
        if self.embedded:
            return self._tailor.jobs.resources(name)
        return self._request("GET", f"/api/v1/training-jobs/{name}/resources")["Samples"]

    # -- hyperparameter tuning jobs: each trial an ordinary training job ----------------------------
    def _tune(self, method: str, *args: Any, http: tuple[str, str], json: Any = None, params: Any = None) -> Any:
        if self.embedded:
            return getattr(self._tailor.tuning, method)(*args)
        return self._request(http[0], http[1], json=json, params=params)

    def create_hyper_parameter_tuning_job(self, spec: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        """CreateHyperParameterTuningJob: HyperParameterTuningJobName, HyperParameterTuningJobConfig,
        TrainingJobDefinition (the built-in algorithm when it names no AlgorithmSpecification), WarmStartConfig."""
        body = {**(spec or {}), **kwargs}
        definition = body.get("TrainingJobDefinition")
        if isinstance(definition, dict):
            definition.setdefault("AlgorithmSpecification", dict(BUILTIN_ALGORITHM))
        return self._tune("create", body, http=("POST", "/api/v1/tuning-jobs"), json=body)

    def describe_hyper_parameter_tuning_job(self, name: str) -> dict[str, Any]:
        return self._tune("describe", name, http=("GET", f"/api/v1/tuning-jobs/{name}"))

    def list_hyper_parameter_tuning_jobs(self, **filters: Any) -> dict[str, Any]:
        if self.embedded:
            return self._tailor.tuning.list(**filters)
        params = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in filters.items()}
        return self._request("GET", "/api/v1/tuning-jobs", params=params)

    def stop_hyper_parameter_tuning_job(self, name: str) -> dict[str, Any]:
        return self._tune("stop", name, http=("POST", f"/api/v1/tuning-jobs/{name}/stop"))

    def list_training_jobs_for_hyper_parameter_tuning_job(self, name: str, **filters: Any) -> dict[str, Any]:
        """The trials: StatusEquals, SortBy (Name, CreationTime, Status, FinalObjectiveMetricValue), SortOrder,
        MaxResults, NextToken."""
        if self.embedded:
            return self._tailor.tuning.list_training_jobs(name, **filters)
        return self._request("GET", f"/api/v1/tuning-jobs/{name}/training-jobs", params=filters)

    def wait_hyper_parameter_tuning_job(self, name: str, timeout: float | None = None, poll: float = 1.0) -> dict:
        """Poll until the tuning job ends (boto3 has no waiter for it either); its last Describe."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            desc = self.describe_hyper_parameter_tuning_job(name)
            done = desc["HyperParameterTuningJobStatus"] in TERMINAL
            if done or (deadline is not None and time.monotonic() >= deadline):
                return desc
            time.sleep(poll)

    # -- hosting: models, endpoint configs, endpoints, invocations ----------------------------------
    def _host(self, method: str, *args: Any, http: tuple[str, str], json: Any = None, params: Any = None) -> Any:
        """One hosting call: HostingService in-process, or the REST route over HTTP."""
        if self.embedded:
            return getattr(self._tailor.hosting, method)(*args)
        return self._request(http[0], http[1], json=json, params=params)

    def create_model(self, spec: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        """CreateModel: ModelName, PrimaryContainer {Image, ModelDataUrl, Environment}."""
        body = {**(spec or {}), **kwargs}
        return self._host("create_model", body, http=("POST", "/api/v1/models"), json=body)

    def describe_model(self, name: str) -> dict[str, Any]:
        return self._host("describe_model", name, http=("GET", f"/api/v1/models/{name}"))

    def list_models(self, **filters: Any) -> dict[str, Any]:
        if self.embedded:
            return self._tailor.hosting.list_models(**filters)
        return self._request("GET", "/api/v1/models", params=filters)

    def delete_model(self, name: str) -> dict[str, Any]:
        return self._host("delete_model", name, http=("DELETE", f"/api/v1/models/{name}"))

    def create_endpoint_config(self, spec: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        """CreateEndpointConfig: EndpointConfigName, ProductionVariants (1-10)."""
        body = {**(spec or {}), **kwargs}
        return self._host("create_endpoint_config", body, http=("POST", "/api/v1/endpoint-configs"), json=body)

    def describe_endpoint_config(self, name: str) -> dict[str, Any]:
        return self._host("describe_endpoint_config", name, http=("GET", f"/api/v1/endpoint-configs/{name}"))

    def list_endpoint_configs(self, **filters: Any) -> dict[str, Any]:
        if self.embedded:
            return self._tailor.hosting.list_endpoint_configs(**filters)
        return self._request("GET", "/api/v1/endpoint-configs", params=filters)

    def delete_endpoint_config(self, name: str) -> dict[str, Any]:
        return self._host("delete_endpoint_config", name, http=("DELETE", f"/api/v1/endpoint-configs/{name}"))

    def create_endpoint(self, spec: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        """CreateEndpoint: EndpointName, EndpointConfigName. Returns at once (Creating); see wait_endpoint."""
        body = {**(spec or {}), **kwargs}
        return self._host("create_endpoint", body, http=("POST", "/api/v1/endpoints"), json=body)

    def update_endpoint(self, name: str, config_name: str) -> dict[str, Any]:
        body = {"EndpointName": name, "EndpointConfigName": config_name}
        return self._host("update_endpoint", body, http=("POST", f"/api/v1/endpoints/{name}/update"), json=body)

    def describe_endpoint(self, name: str) -> dict[str, Any]:
        return self._host("describe_endpoint", name, http=("GET", f"/api/v1/endpoints/{name}"))

    def list_endpoints(self, **filters: Any) -> dict[str, Any]:
        if self.embedded:
            return self._tailor.hosting.list_endpoints(**filters)
        return self._request("GET", "/api/v1/endpoints", params=filters)

    def delete_endpoint(self, name: str) -> dict[str, Any]:
        return self._host("delete_endpoint", name, http=("DELETE", f"/api/v1/endpoints/{name}"))

    def wait_endpoint(self, name: str, timeout: float = 300.0, poll: float = 0.25) -> dict[str, Any]:
        """Until the endpoint leaves Creating/Updating/Deleting; {} once a deleted endpoint is gone."""
        from tailor.hosting.endpoints import wait_settled

        return wait_settled(self.describe_endpoint, name, timeout, poll)

    def endpoint_logs(self, name: str, offset: int = 0, limit: int | None = None) -> dict[str, Any]:
        """``{Text, NextOffset, Complete}``: the endpoint's runtime log from logical byte ``offset`` (whole
        lines, at most ``limit`` bytes, 1 MiB by default); Complete once the endpoint was deleted."""
        if self.embedded:
            return self._tailor.hosting.endpoint_logs(name, offset, limit)
        params = {"offset": offset, "limit": limit}
        return self._request("GET", f"/api/v1/endpoints/{name}/logs", params=params)

    def endpoint_metrics(self, name: str) -> dict[str, Any]:
        return self._host("endpoint_metrics", name, http=("GET", f"/api/v1/endpoints/{name}/metrics"))

    def invoke_endpoint(
        self, name: str, body: bytes, content_type: str = "application/x-image", accept: str = ""
    ) -> dict[str, Any]:
        """InvokeEndpoint: ``{"Body": bytes, "ContentType", "InvokedProductionVariant"}``; errors raise."""
        if self.embedded:
            result = self._tailor.hosting.invoke(name, body, content_type, accept)
            status, ctype, data, variant = (
                result.reply.status,
                result.reply.content_type,
                result.reply.body,
                result.variant,
            )
        else:
            import httpx

            headers = {"Content-Type": content_type}
            if accept:
                headers["Accept"] = accept
            request = self._http.build_request("POST", f"/endpoints/{name}/invocations", content=body, headers=headers)
            try:
                resp = self._http.send(self._signed(request))
            except httpx.HTTPError as err:
                raise ServiceUnavailableError(f"cannot reach the Tailor server at {self.url}: {err}") from None
            status, ctype, data = resp.status_code, resp.headers.get("content-type", ""), resp.content
            variant = resp.headers.get("x-amzn-invoked-production-variant", "")
        if status >= 400:
            import json as _json

            try:
                err = _json.loads(data)
                code, message = err.get("__type", "HTTPError"), err.get("message", "")
            except ValueError:
                code, message = "HTTPError", data[:200].decode("utf-8", "replace")
            raise _invoke_error(code, status)(self._with_hint(code, message))
        return {"Body": data, "ContentType": ctype, "InvokedProductionVariant": variant}

    # -- batch transform -----------------------------------------------------------------------------
    def create_transform_job(self, spec: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        """CreateTransformJob: TransformJobName, ModelName, TransformInput, TransformOutput, TransformResources,
        BatchStrategy, MaxConcurrentTransforms, MaxPayloadInMB (``tailor.transform.spec``). Returns at once."""
        body = {**(spec or {}), **kwargs}
        if self.embedded:
            return self._tailor.transform.create(body)
        return self._request("POST", "/api/v1/transform-jobs", json=body)

    def describe_transform_job(self, name: str) -> dict[str, Any]:
        """DescribeTransformJob, plus ``TransformProgress`` (records done / total, rate, summary)."""
        if self.embedded:
            return self._tailor.transform.describe(name)
        return self._request("GET", f"/api/v1/transform-jobs/{name}")

    def list_transform_jobs(self, **filters: Any) -> dict[str, Any]:
        if self.embedded:
            return self._tailor.transform.list(**filters)
        params = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in filters.items()}
        return self._request("GET", "/api/v1/transform-jobs", params=params)

    def stop_transform_job(self, name: str) -> dict[str, Any]:
        if self.embedded:
            return self._tailor.transform.stop(name)
        return self._request("POST", f"/api/v1/transform-jobs/{name}/stop")

    def wait_transform_job(self, name: str, timeout: float | None = None, poll: float = 0.5) -> dict[str, Any]:
        """Describe until the job is Completed, Failed or Stopped (or ``timeout`` seconds passed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            desc = self.describe_transform_job(name)
            if desc["TransformJobStatus"] in TERMINAL or (deadline is not None and time.monotonic() >= deadline):
                return desc
            time.sleep(poll)


def _invoke_error(code: str, status: int) -> type[TailorError]:
    import tailor.errors as errors

    for cls in vars(errors).values():
        if isinstance(cls, type) and issubclass(cls, TailorError) and cls.http_status == status and cls.code == code:
            return cls
    by_status = {
        413: errors.PayloadTooLargeError,
        415: errors.UnsupportedMediaTypeError,
        424: errors.ModelError,
        429: errors.ThrottlingError,
    }
    return by_status.get(status) or _error_class(code, status)
