"""`tailor endpoints …`, `tailor deploy JOB`, `tailor invoke ENDPOINT IMAGE…`, `tailor serve-model DIR`.

Without ``--url`` (or ``TAILOR_URL``) the commands run in-process against this machine's Tailor home. Endpoint
workers belong to the Tailor process that started them, so the commands that start workers (deploy, endpoints
create/update) need a running ``tailor server`` and refuse without one rather than report an InService
endpoint that nothing serves; in-process, ``tailor invoke`` relaunches an endpoint's workers when their owner
has exited (a few seconds).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from tailor.cli.root import json_option as _json
from tailor.cli.root import settings_of
from tailor.cli.root import url_option as _url

_wait = click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the endpoint to settle.")
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


@click.group("endpoints")
def endpoints() -> None:
    """Endpoints: running model servers behind one name."""


def _server_client(ctx: click.Context, url: str | None, what: str) -> Any:
    """A client for commands that start endpoint workers. Workers live as long as the Tailor process that
    started them, so one started by this short-lived command would be gone when it exits while the endpoint
    still read InService: such commands need a server (--url or TAILOR_URL), and say so otherwise."""
    from tailor.cli._jobs_common import open_client
    from tailor.errors import ValidationError

    settings = settings_of(ctx)
    if url or settings.url:
        return open_client(settings, url)
    local = f"http://{settings.host}:{settings.port}"
    if _answers(local):
        hint = f"a Tailor server answers at {local}: pass --url {local} or export TAILOR_URL={local}"
    else:
        hint = f"start `tailor server` (it listens on {local}) and pass --url {local}, or set TAILOR_URL"
    raise ValidationError(
        f"{what} needs a running Tailor server to keep the endpoint's workers alive after this command exits: {hint}"
    )


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url + "/healthz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def _settle(client: Any, name: str, wait: bool) -> None:
    if not wait:
        click.echo(f"{name}: {client.describe_endpoint(name)['EndpointStatus']}")
        return
    desc = client.wait_endpoint(name)
    if not desc:
        click.echo(f"{name}: deleted")
        return
    click.echo(f"{name}: {desc['EndpointStatus']}")
    if desc.get("FailureReason"):
        click.echo(f"FailureReason: {desc['FailureReason']}")
    if desc["EndpointStatus"] == "Failed":
        from tailor.errors import ServiceUnavailableError

        raise ServiceUnavailableError(f"endpoint {name} failed: {desc.get('FailureReason', 'see its worker logs')}")


def _deploy(verb: str, config_help: str, doc: str, send: Callable[[Any, str, str], Any]) -> None:
    """``endpoints create`` / ``endpoints update``: send the request to a server, then report (or wait for) the
    endpoint's status."""

    @endpoints.command(verb, help=doc)
    @click.argument("name")
    @click.option("--config", "config_name", required=True, help=config_help)
    @_wait
    @_url
    @click.pass_context
    def command(ctx: click.Context, name: str, config_name: str, wait: bool, url: str | None) -> None:
        with _server_client(ctx, url, f"tailor endpoints {verb}") as client:
            send(client, name, config_name)
            _settle(client, name, wait)


_deploy(
    "create",
    "Endpoint configuration name.",
    "CreateEndpoint: start the workers; InService once every worker answers /ping (needs a server).",
    lambda client, name, config: client.create_endpoint(EndpointName=name, EndpointConfigName=config),
)
_deploy(
    "update",
    "The new endpoint configuration.",
    "UpdateEndpoint: new workers start, traffic switches atomically, old workers drain; no request fails.",
    lambda client, name, config: client.update_endpoint(name, config),
)


@endpoints.command("delete")
@click.argument("name")
@_wait
@_url
@click.pass_context
def delete_endpoint(ctx: click.Context, name: str, wait: bool, url: str | None) -> None:
    """DeleteEndpoint."""
    from tailor.cli._jobs_common import open_client

    with open_client(settings_of(ctx), url) as client:
        client.delete_endpoint(name)
        _settle(client, name, wait)


@endpoints.command("list")
@click.option("--name-contains")
@click.option("--status")
@_url
@_json
@click.pass_context
def list_endpoints(
    ctx: click.Context, name_contains: str | None, status: str | None, url: str | None, as_json: bool
) -> None:
    """List endpoints, newest first."""
    from tailor.cli._jobs_common import call, echo_json, table, when

    filters = {k: v for k, v in {"NameContains": name_contains, "StatusEquals": status}.items() if v}
    out = call(ctx, url, lambda client: client.list_endpoints(**filters, MaxResults=100))
    if echo_json(out, as_json):
        return
    rows = [[e["EndpointName"], e["EndpointStatus"], when(e["CreationTime"])] for e in out["Endpoints"]]
    click.echo(table(rows, ["NAME", "STATUS", "CREATED"]))


@endpoints.command("describe")
@click.argument("name")
@_url
@_json
@click.pass_context
def describe_endpoint(ctx: click.Context, name: str, url: str | None, as_json: bool) -> None:
    """DescribeEndpoint."""
    from tailor.cli._jobs_common import call, echo_json, table

    desc = call(ctx, url, lambda client: client.describe_endpoint(name))
    if echo_json(desc, as_json):
        return
    click.echo(f"EndpointName      {desc['EndpointName']}\nStatus            {desc['EndpointStatus']}")
    click.echo(f"EndpointConfig    {desc['EndpointConfigName']}")
    if capture := desc.get("DataCaptureConfig"):
        click.echo(
            f"DataCapture       {capture['CaptureStatus']}, {capture['CurrentSamplingPercentage']} % "
            f"to {capture['DestinationS3Uri']}"
        )
    if desc.get("FailureReason"):
        click.echo(f"FailureReason     {desc['FailureReason']}")
    rows = [
        [
            v["VariantName"],
            v["ModelName"],
            f"{v['CurrentInstanceCount']}/{v['DesiredInstanceCount']}",
            v["CurrentWeight"],
        ]
        for v in desc["ProductionVariants"]
    ]
    click.echo(table(rows, ["VARIANT", "MODEL", "INSTANCES", "WEIGHT"]))


@endpoints.command("logs")
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the endpoint is deleted (Ctrl-C).")
@click.option("--offset", type=click.IntRange(0), default=0, help="Start at this byte offset of the log.")
@_url
@click.pass_context
def endpoint_logs(ctx: click.Context, name: str, follow: bool, offset: int, url: str | None) -> None:
    """The endpoint's runtime log: worker starts, model loads, crashes and restarts, updates, failed invocations
    (with their request ids) and what the workers printed."""
    from tailor.cli._jobs_common import open_client, print_log

    # Ctrl-C ends a follow quietly.
    with open_client(settings_of(ctx), url) as client, contextlib.suppress(KeyboardInterrupt):
        print_log(lambda pos: client.endpoint_logs(name, pos), offset, follow)


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


@endpoints.command("metrics")
@click.argument("name")
@_url
@_json
@click.pass_context
def endpoint_metrics(ctx: click.Context, name: str, url: str | None, as_json: bool) -> None:
    """Per-minute invocation metrics per variant (latencies in microseconds, as SageMaker's). MISMATCHED counts
    images whose size or colour mode differed from the model's (resized or converted before they ran)."""
    from tailor.cli._jobs_common import call, echo_json, table, when

    out = call(ctx, url, lambda client: client.endpoint_metrics(name))
    if echo_json(out, as_json):
        return
    rows = [
        [
            when(p["Timestamp"]),
            p["VariantName"],
            p["Invocations"],
            p["Invocation4XXErrors"],
            p["Invocation5XXErrors"],
            _num(p.get("ModelLatency"), "{:.0f}"),
            _num(p.get("ModelLatencyP50"), "{:.0f}"),
            _num(p.get("ModelLatencyP99"), "{:.0f}"),
            _num(p.get("OverheadLatency"), "{:.0f}"),
            _num(p.get("BatchSize"), "{:.1f}"),
            str(p.get("MismatchedInputs", 0)),
            f"{p['InvocationsPerInstance']:.1f}",
            "-" if p["CPUUtilization"] is None else f"{p['CPUUtilization']:.1f}",
            "-" if p["MemoryUtilization"] is None else f"{p['MemoryUtilization']:.2f}",
        ]
        for p in out["Metrics"]
    ]
    headers = [
        "MINUTE",
        "VARIANT",
        "INVOCATIONS",
        "4XX",
        "5XX",
        "MODEL_US",
        "P50_US",
        "P99_US",
        "OVERHEAD_US",
        "BATCH",
        "MISMATCHED",
        "PER_INSTANCE",
        "CPU%",
        "MEM%",
    ]
    click.echo(table(rows, headers))


@click.command("deploy")
@click.argument("job")
@click.option("--name", help="Model, config and endpoint name (default: the job name).")
@click.option("--instance-count", type=click.IntRange(1, 16), default=1, show_default=True)
@click.option("--instance-type", default="ml.m5.large", show_default=True)
@click.option("--capture-to", help="Data capture: write sampled requests and responses under this s3:// prefix.")
@click.option(
    "--capture-percent", type=click.IntRange(0, 100), default=100, show_default=True, help="Data capture sampling."
)
@click.option(
    "--capture-mode",
    type=click.Choice(["Input", "Output", "InputAndOutput"]),
    default="InputAndOutput",
    show_default=True,
)
@_wait
@_url
@click.pass_context
def deploy(
    ctx: click.Context,
    job: str,
    name: str | None,
    instance_count: int,
    instance_type: str,
    capture_to: str | None,
    capture_percent: int,
    capture_mode: str,
    wait: bool,
    url: str | None,
) -> None:
    """Model + endpoint config + endpoint from a completed training job, in one step (needs a server:
    --url or TAILOR_URL). With --capture-to, the config's DataCaptureConfig records invocations as SageMaker's
    JSON Lines under <prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/."""
    from tailor.errors import ValidationError

    name = name or job
    with _server_client(ctx, url, "tailor deploy") as client:
        desc = client.describe_training_job(job)
        artifact = (desc.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
        if desc.get("TrainingJobStatus") != "Completed" or not artifact:
            raise ValidationError(
                f"training job {job} is {desc.get('TrainingJobStatus')}: deploy needs a Completed job"
            )
        image = (desc.get("AlgorithmSpecification") or {}).get("TrainingImage") or "tailor/image-classification"
        client.create_model(ModelName=name, PrimaryContainer={"Image": image, "ModelDataUrl": artifact})
        capture = {
            "EnableCapture": True,
            "InitialSamplingPercentage": capture_percent,
            "DestinationS3Uri": capture_to,
            "CaptureOptions": [{"CaptureMode": capture_mode}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json", "application/jsonlines"]},
        }
        client.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": name,
                    "InitialInstanceCount": instance_count,
                    "InstanceType": instance_type,
                    "InitialVariantWeight": 1.0,
                }
            ],
            **({"DataCaptureConfig": capture} if capture_to else {}),
        )
        client.create_endpoint(EndpointName=name, EndpointConfigName=name)
        _settle(client, name, wait)


@click.command("invoke")
@click.argument("endpoint")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--top-k", type=click.IntRange(1, 1000), default=1, show_default=True, help="Labels per image.")
@_url
@_json
@click.pass_context
def invoke(
    ctx: click.Context, endpoint: str, images: tuple[Path, ...], top_k: int, url: str | None, as_json: bool
) -> None:
    """Classify images: prints `Label (probability)` lines, best first."""
    from tailor.cli._jobs_common import open_client

    accept = f"application/json;verbose=1;top_k={top_k}"
    with open_client(settings_of(ctx), url) as client:
        for path in images:
            ctype = _IMAGE_TYPES.get(path.suffix.lower(), "application/x-image")
            out = json.loads(client.invoke_endpoint(endpoint, path.read_bytes(), ctype, accept)["Body"])
            if as_json:
                click.echo(json.dumps({"image": str(path), **out}))
                continue
            if len(images) > 1:
                click.echo(f"{path}:")
            for item in out["top_k"]:
                click.echo(f"{item['label']} ({item['probability']:.6f})")


@click.command("serve-model")
@click.argument("model_dir", type=click.Path(exists=True, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True)
@click.option("--max-batch-size", type=click.IntRange(1, 4096), default=None, help="Images per batch (default 32).")
@click.option("--max-delay-ms", type=click.FloatRange(0, 1000), default=None, help="Batch fill wait (default 0).")
@click.option("--max-queue", type=click.IntRange(1), default=None, help="Queued images before 429 (default 512).")
@click.option("--timeout-s", type=click.FloatRange(0.01), default=None, help="Per-request deadline (default 5).")
@click.pass_context
def serve_model(
    ctx: click.Context,
    model_dir: Path,
    host: str,
    port: int,
    max_batch_size: int | None,
    max_delay_ms: float | None,
    max_queue: int | None,
    timeout_s: float | None,
) -> None:
    """Serve one model dir (or model.tar.gz) with the SageMaker contract: GET /ping, POST /invocations."""
    from tailor.serving.worker import main as worker_main

    argv = [str(model_dir), "--host", host, "--port", str(port)]
    argv += ["--max-image-pixels", str(settings_of(ctx).max_image_pixels)]
    for flag, value in (
        ("--max-batch-size", max_batch_size),
        ("--max-delay-ms", max_delay_ms),
        ("--max-queue", max_queue),
        ("--timeout-s", timeout_s),
    ):
        if value is not None:
            argv += [flag, str(value)]
    worker_main(argv)


commands: list[click.Command] = [endpoints, deploy, invoke, serve_model]
