"""`tailor jobs list|describe|logs|stop|metrics|plot`: inspect and control training jobs."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click

from tailor.cli.root import json_option as _json
from tailor.cli.root import settings_of
from tailor.cli.root import url_option as _url


@click.group("jobs")
def jobs() -> None:
    """Inspect and control training jobs."""


@jobs.command("list")
@click.option("--name-contains")
@click.option("--status", type=click.Choice(["InProgress", "Completed", "Failed", "Stopping", "Stopped"]))
@click.option("--max-results", type=click.IntRange(1, 100), default=50, show_default=True)
@click.option("--sort-by", type=click.Choice(["CreationTime", "Name", "Status"]), default="CreationTime")
@click.option("--ascending", is_flag=True)
@_url
@_json
@click.pass_context
def list_jobs(
    ctx: click.Context,
    name_contains: str | None,
    status: str | None,
    max_results: int,
    sort_by: str,
    ascending: bool,
    url: str | None,
    as_json: bool,
) -> None:
    """List training jobs, newest first."""
    from tailor.cli._jobs_common import echo_json, open_client, table, when

    with open_client(settings_of(ctx), url) as client:
        out = client.list_training_jobs(
            NameContains=name_contains,
            StatusEquals=status,
            MaxResults=max_results,
            SortBy=sort_by,
            SortOrder="Ascending" if ascending else "Descending",
        )
    if echo_json(out, as_json):
        return
    rows = [
        [s["TrainingJobName"], s["TrainingJobStatus"], s["SecondaryStatus"], when(s["CreationTime"])]
        for s in out["TrainingJobSummaries"]
    ]
    click.echo(table(rows, ["NAME", "STATUS", "SECONDARY", "CREATED"]))


@jobs.command("describe")
@click.argument("name")
@_url
@_json
@click.pass_context
def describe(ctx: click.Context, name: str, url: str | None, as_json: bool) -> None:
    """DescribeTrainingJob."""
    from tailor.cli._jobs_common import echo_result, open_client

    with open_client(settings_of(ctx), url) as client:
        echo_result(client.describe_training_job(name), as_json)


@jobs.command("logs")
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the job ends.")
@click.option("--offset", type=int, default=0, help="Start at this byte offset of the log.")
@_url
@click.pass_context
def logs(ctx: click.Context, name: str, follow: bool, offset: int, url: str | None) -> None:
    """Print a job's log."""
    from tailor.cli._jobs_common import open_client, print_log

    with open_client(settings_of(ctx), url) as client:
        client.describe_training_job(name)
        print_log(lambda pos: client.training_job_logs(name, pos), offset, follow)


@jobs.command("stop")
@click.argument("name")
@click.option("--wait", is_flag=True, help="Wait until the job has stopped.")
@_url
@_json
@click.pass_context
def stop(ctx: click.Context, name: str, wait: bool, url: str | None, as_json: bool) -> None:
    """StopTrainingJob: SIGTERM, then SIGKILL after the grace period; the job ends Stopped."""
    from tailor.cli._jobs_common import echo_result, open_client

    with open_client(settings_of(ctx), url) as client:
        desc = client.stop_training_job(name)
        if wait:
            desc = client.training_job(name).wait()
    echo_result(desc, as_json)


@jobs.command("metrics")
@click.argument("name")
@click.option("--metric", help="Only this metric (e.g. validation:accuracy).")
@_url
@_json
@click.pass_context
def metrics(ctx: click.Context, name: str, metric: str | None, url: str | None, as_json: bool) -> None:
    """The metric time series parsed from the job log."""
    from tailor.cli._jobs_common import call, echo_json, table, when

    points = call(ctx, url, lambda client: client.training_job_metrics(name, metric))
    if echo_json(points, as_json):
        return
    rows = [
        [p["MetricName"], "-" if p["Epoch"] is None else p["Epoch"], f"{p['Value']:.6g}", when(p["Timestamp"])]
        for p in points
    ]
    click.echo(table(rows, ["METRIC", "EPOCH", "VALUE", "TIME"]))


@jobs.command("plot")
@click.argument("name")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="PNG for the curves.")
@click.option(
    "--confusion/--no-confusion",
    default=True,
    show_default=True,
    help="Also write <out>-confusion.png: the validation set's confusion matrix (loads the model).",
)
@_url
@click.pass_context
def plot(ctx: click.Context, name: str, out: str, confusion: bool, url: str | None) -> None:
    """Accuracy and loss per epoch (train/validation); confusion matrix of the validation set."""
    from tailor.cli._jobs_common import open_client

    settings = settings_of(ctx)
    with open_client(settings, url) as client:
        desc = client.describe_training_job(name)
        points = client.training_job_metrics(name)
    click.echo(f"plotting {len(points)} metric points of {name}", err=True)
    import matplotlib

    matplotlib.use("Agg")
    curves = plot_curves(points, Path(out), title=name)
    click.echo(f"curves: {curves}")
    if confusion:
        path = plot_confusion(settings, desc, Path(out), say=lambda msg: click.echo(msg, err=True))
        click.echo(f"confusion matrix: {path}" if path else "confusion matrix: skipped (no model or validation data)")


def plot_curves(points: list[dict[str, Any]], out: Path, title: str) -> Path:
    import matplotlib.pyplot as plt

    from tailor.errors import ValidationError

    series: dict[str, dict[int, float]] = {}
    for p in points:
        if p["Epoch"] is not None:
            series.setdefault(p["MetricName"], {})[p["Epoch"]] = p["Value"]  # last value per epoch wins
    if not series:
        raise ValidationError(f"job {title!r} has no per-epoch metrics to plot yet")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, kind in zip(axes, ("accuracy", "loss"), strict=True):
        for metric, values in sorted(series.items()):
            if metric.endswith(kind):
                epochs = sorted(values)
                ax.plot(epochs, [values[e] for e in epochs], marker="o", label=metric)
        _epoch_axis(ax, [e for values in series.values() for e in values])
        ax.set_ylabel(kind)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _epoch_axis(ax: Any, epochs: list[int]) -> None:
    """Whole epochs, with half an epoch of margin: one epoch alone otherwise spans -0.04..0.04."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("epoch (as logged: Epoch[0] is the first)")


def plot_confusion(settings: Any, desc: dict[str, Any], out: Path, say: Any = lambda msg: None) -> Path | None:
    """Predict the validation channel with the job's model (tailor.serving.loader) and plot the matrix;
    ``say`` reports each step (loading takes seconds, predicting ~18k images several more)."""
    import numpy as np

    from tailor.cli.plots import draw_confusion
    from tailor.data.loader import load_channel
    from tailor.progress import progress_bar
    from tailor.serving.loader import load_model
    from tailor.storage import Storage

    artifact = (desc.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    channel = next((c for c in desc.get("InputDataConfig", []) if c["ChannelName"] == "validation"), None)
    if not artifact or channel is None:
        return None
    storage = Storage(settings)
    with tempfile.TemporaryDirectory(prefix="tailor-plot-") as tmp:
        say(f"confusion matrix: loading the model {artifact}")
        model_file = storage.download_file(artifact, Path(tmp) / "model.tar.gz")
        data_dir = settings.jobs_dir / desc["TrainingJobName"] / "input" / "data" / "validation"
        if not data_dir.is_dir():
            data_dir = Path(tmp) / "validation"
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            for obj in storage.list(uri):
                storage.download_file(obj.uri, data_dir / Path(obj.key).name)
        model = load_model(model_file)
        c, h, w = model.meta.image_shape
        say(f"confusion matrix: decoding the validation channel {channel['DataSource']['S3DataSource']['S3Uri']}")
        data = load_channel(data_dir, channel.get("ContentType"), channels=c, size=(h, w))
        batches = []
        with progress_bar(len(data), f"predicting {len(data):,} validation images", unit="img") as bar:
            for i in range(0, len(data), 256):
                batches.append(model.predict(np.ascontiguousarray(data.images[i : i + 256])).argmax(1))
                bar.update(len(batches[-1]))
        preds = np.concatenate(batches)
        model.close()
    labels = data.labels.astype(int)
    k = model.meta.num_classes
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (labels, preds), 1)
    accuracy = float((preds == labels).mean())
    names = next((n for n in (model.meta.class_names, data.class_names) if n and len(n) == k), None)
    names = names or [str(i) for i in range(k)]
    title = f"{desc['TrainingJobName']}\nvalidation accuracy {accuracy:.4f} ({len(labels):,} images)"
    return draw_confusion(matrix, names, title, out.with_name(out.stem + "-confusion.png"))


commands: list[click.Command] = [jobs]
