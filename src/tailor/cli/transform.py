"""`tailor transform MODEL INPUT --out OUTPUT` and `tailor transform-jobs list|describe|stop`: batch transform.

`tailor transform` creates a transform job (CreateTransformJob) for a model created by `tailor deploy` or
`tailor models create`, follows it with a progress display (records done / total and the rate, from
DescribeTransformJob's ``TransformProgress``) and prints the summary: counts per predicted class and, when the
inputs sit in class folders (``…/images/<class>/x.png``), the accuracy and a confusion-matrix PNG.
Without --url it runs in-process; Ctrl-C then stops the job (it ends Stopped, its outputs whole).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from tailor.cli.root import json_option as _json
from tailor.cli.root import settings_of
from tailor.cli.root import url_option as _url

STATUSES = ["InProgress", "Completed", "Failed", "Stopping", "Stopped"]


@click.command("transform")
@click.argument("model")
@click.argument("input_uri", metavar="INPUT")
@click.option("--out", "output", required=True, help="s3:// prefix the .out files go to (one per input object).")
@click.option("--name", help="Transform job name (default: MODEL-YYYYmmdd-HHMMSS).")
@click.option(
    "--content-type",
    type=click.Choice(["application/x-image", "application/x-recordio"]),
    default="application/x-image",
    show_default=True,
    help="x-image: one image per object; x-recordio: .rec files, each record an image.",
)
@click.option("--manifest", is_flag=True, help='INPUT is a manifest file ([{"prefix": …}, "key", …]).')
@click.option("--batch-strategy", type=click.Choice(["MultiRecord", "SingleRecord"]), default="MultiRecord",
              show_default=True)  # fmt: skip
@click.option("--instance-count", type=click.IntRange(1, 8), default=1, show_default=True,
              help="Model workers in parallel.")  # fmt: skip
@click.option("--max-concurrent", type=click.IntRange(0, 256), default=0,
              help="Invocations in flight per worker (0: 4 for MultiRecord, 64 for SingleRecord).")  # fmt: skip
@click.option("--accept", type=click.Choice(["application/jsonlines", "application/json"]),
              default="application/jsonlines", show_default=True)  # fmt: skip
@click.option("--confusion", type=click.Path(dir_okay=False), help="Confusion-matrix PNG (default NAME-confusion.png).")
@click.option("--no-wait", is_flag=True, help="Return once the job is created.")
@_url
@_json
@click.pass_context
def transform(
    ctx: click.Context,
    model: str,
    input_uri: str,
    output: str,
    name: str | None,
    content_type: str,
    manifest: bool,
    batch_strategy: str,
    instance_count: int,
    max_concurrent: int,
    accept: str,
    confusion: str | None,
    no_wait: bool,
    url: str | None,
    as_json: bool,
) -> None:
    """Classify every image under INPUT (an s3:// prefix) with MODEL; one .out per input object under --out."""
    from tailor.cli._jobs_common import echo_json, open_client
    from tailor.errors import ValidationError

    name = name or f"{model[:47]}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    spec = {
        "TransformJobName": name,
        "ModelName": model,
        "BatchStrategy": batch_strategy,
        "MaxConcurrentTransforms": max_concurrent,
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "ManifestFile" if manifest else "S3Prefix", "S3Uri": input_uri}
            },
            "ContentType": content_type,
            "SplitType": "RecordIO" if content_type == "application/x-recordio" else "None",
        },
        "TransformOutput": {"S3OutputPath": output, "Accept": accept, "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": instance_count},
    }
    with open_client(settings_of(ctx), url) as client:
        if no_wait and client.embedded:
            raise ValidationError(
                "--no-wait needs a server (--url or TAILOR_URL): in-process, the job ends when this command does"
            )
        client.create_transform_job(spec)
        if no_wait:
            desc = client.describe_transform_job(name)
        else:
            click.echo(f"transform job {name}: {input_uri} -> {output}", err=True)
            try:
                desc = follow(client, name)
            except KeyboardInterrupt:
                client.stop_transform_job(name)
                desc = client.wait_transform_job(name, timeout=60)
    if echo_json(desc, as_json):
        return
    click.echo(render(desc))
    matrix = _summary_of(desc)
    if matrix.get("ConfusionMatrix"):
        path = Path(confusion or f"{name}-confusion.png")
        draw(desc, path)
        click.echo(f"confusion matrix: {path}")
    if desc["TransformJobStatus"] != "Completed":
        sys.exit(1)


def follow(client: Any, name: str, poll: float = 0.5) -> dict[str, Any]:
    """Describe until the job ends, with a progress display of records handled (done + failed) on stderr."""
    from tailor.progress import progress_bar
    from tailor.transform import TERMINAL

    bar = None
    seen = 0
    try:
        while True:
            desc = client.describe_transform_job(name)
            p = desc.get("TransformProgress") or {}
            if bar is None and p.get("RecordsTotal"):
                bar = progress_bar(p["RecordsTotal"], f"transform {name}", unit="img")
            handled = (p.get("RecordsDone") or 0) + (p.get("RecordsFailed") or 0)
            if bar is not None and handled > seen:
                bar.update(handled - seen)
                seen = handled
            if desc["TransformJobStatus"] in TERMINAL:
                return desc
            time.sleep(poll)
    finally:
        if bar is not None:
            bar.close()


def _summary_of(desc: dict[str, Any]) -> dict[str, Any]:
    return (desc.get("TransformProgress") or {}).get("Summary") or {}


def render(desc: dict[str, Any]) -> str:
    """Status, counts, rate; predicted counts per class; accuracy when the inputs sit in class folders."""
    p = desc.get("TransformProgress") or {}
    lines = [
        f"{desc['TransformJobName']}: {desc['TransformJobStatus']}, {p.get('RecordsDone', 0):,} of "
        f"{p.get('RecordsTotal') or 0:,} records ({p.get('RecordsFailed', 0):,} failed) at "
        f"{p.get('RecordsPerSecond', 0):,.0f} records/s; outputs under {desc['TransformOutput']['S3OutputPath']}"
    ]
    if desc.get("FailureReason"):
        lines.append(f"failure: {desc['FailureReason']}")
    summary = _summary_of(desc)
    counts = summary.get("PredictedCounts") or {}
    if counts:
        width = max(len(k) for k in counts)
        lines.append("predicted class counts:")
        lines += [f"  {k:<{width}}  {v:>7,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])]
    if summary.get("Labelled"):
        lines.append(
            f"accuracy: {100 * summary['Accuracy']:.2f} % ({summary['Correct']:,} of {summary['Labelled']:,} "
            "images labelled by their class folder)"
        )
    return "\n".join(lines)


def draw(desc: dict[str, Any], path: Path) -> Path:
    from tailor.cli.plots import draw_confusion

    s = _summary_of(desc)
    title = f"{desc['TransformJobName']}\naccuracy {s['Accuracy']:.4f} ({s['Labelled']:,} images)"
    return draw_confusion(s["ConfusionMatrix"], s["ConfusionClasses"], title, path)


@click.group("transform-jobs")
def transform_jobs() -> None:
    """Inspect and stop transform jobs."""


@transform_jobs.command("list")
@click.option("--name-contains")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--max-results", type=click.IntRange(1, 100), default=50, show_default=True)
@_url
@_json
@click.pass_context
def list_jobs(
    ctx: click.Context, name_contains: str | None, status: str | None, max_results: int, url: str | None, as_json: bool
) -> None:
    """List transform jobs, newest first."""
    from tailor.cli._jobs_common import call, echo_json, table, when

    out = call(
        ctx,
        url,
        lambda c: c.list_transform_jobs(NameContains=name_contains, StatusEquals=status, MaxResults=max_results),
    )
    if echo_json(out, as_json):
        return
    rows = [
        [s["TransformJobName"], s["TransformJobStatus"], when(s["CreationTime"])] for s in out["TransformJobSummaries"]
    ]
    click.echo(table(rows, ["NAME", "STATUS", "CREATED"]))


@transform_jobs.command("describe")
@click.argument("name")
@_url
@_json
@click.pass_context
def describe(ctx: click.Context, name: str, url: str | None, as_json: bool) -> None:
    """DescribeTransformJob: status, progress and summary."""
    from tailor.cli._jobs_common import call, echo_json

    desc = call(ctx, url, lambda c: c.describe_transform_job(name))
    if not echo_json(desc, as_json):
        click.echo(render(desc))


@transform_jobs.command("stop")
@click.argument("name")
@_url
@click.pass_context
def stop(ctx: click.Context, name: str, url: str | None) -> None:
    """StopTransformJob: in-flight invocations are dropped; outputs already written stay whole."""
    from tailor.cli._jobs_common import call

    call(ctx, url, lambda c: c.stop_transform_job(name))
    click.echo(f"stopping {name}")


commands: list[click.Command] = [transform, transform_jobs]
