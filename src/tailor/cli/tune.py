"""`tailor tune create|describe|list|trials|stop|wait`: hyperparameter tuning jobs (SageMaker's shapes).

``create`` takes a CreateHyperParameterTuningJob JSON file and/or flags, e.g.

    tailor tune create --name fm-tune --train s3://data/train --validation s3://data/validation \\
        --hp num_classes=10 --hp epochs=2 --continuous learning_rate=0.001:0.1:Logarithmic \\
        --strategy Bayesian --max-jobs 8 --max-parallel 2

and waits with a progress line per finished trial (without a server the trials run in this process, so it
always waits; with ``--url`` ``--no-wait`` returns at once).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from tailor.cli.root import json_option as _json
from tailor.cli.root import settings_of
from tailor.cli.root import url_option as _url
from tailor.errors import AlgorithmError, ValidationError

STRATEGIES = ["Bayesian", "Random", "Hyperband", "Grid"]
SCALINGS = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
TERMINAL = ("Completed", "Failed", "Stopped")


@click.group("tune")
def tune() -> None:
    """Tune hyperparameters: many training jobs, the best one chosen by an objective metric."""


def _range(option: str, text: str) -> dict[str, str]:
    """``name=min:max[:scaling]`` as a SageMaker Continuous/IntegerParameterRange."""
    name, sep, rest = text.partition("=")
    parts = rest.split(":")
    if not sep or not name.strip() or len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in SCALINGS):
        raise ValidationError(f"{option} {text!r}: use name=min:max[:scaling], scaling one of {', '.join(SCALINGS)}")
    out = {"Name": name.strip(), "MinValue": parts[0], "MaxValue": parts[1]}
    if len(parts) == 3:
        out["ScalingType"] = parts[2]
    return out


def _categorical(text: str) -> dict[str, Any]:
    name, sep, rest = text.partition("=")
    values = [v.strip() for v in rest.split(",") if v.strip()]
    if not sep or not name.strip() or not values:
        raise ValidationError(f"--categorical {text!r}: use name=value1,value2,...")
    return {"Name": name.strip(), "Values": values}


def build_request(spec_file: str | None, flags: dict[str, Any]) -> dict[str, Any]:
    """A CreateHyperParameterTuningJob request: the JSON file (if any) with flags layered on top."""
    from tailor.cli.train import build_spec

    body: dict[str, Any] = {}
    if spec_file:
        try:
            body = json.loads(Path(spec_file).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValidationError(f"--spec {spec_file}: not a readable JSON file ({err})") from None
        if not isinstance(body, dict):
            raise ValidationError(f"--spec {spec_file}: expected a JSON object (CreateHyperParameterTuningJob)")
    if flags["name"]:
        body["HyperParameterTuningJobName"] = flags["name"]
    body.setdefault("HyperParameterTuningJobName", f"tune-{time.strftime('%Y%m%d-%H%M%S')}")
    config = body.setdefault("HyperParameterTuningJobConfig", {})
    if flags["strategy"] or "Strategy" not in config:
        config["Strategy"] = flags["strategy"] or "Bayesian"
    if flags["objective"] or flags["minimize"] or "HyperParameterTuningJobObjective" not in config:
        old = config.get("HyperParameterTuningJobObjective", {})
        config["HyperParameterTuningJobObjective"] = {
            "Type": "Minimize" if flags["minimize"] else old.get("Type", "Maximize"),
            "MetricName": flags["objective"] or old.get("MetricName", "validation:accuracy"),
        }
    limits = config.setdefault("ResourceLimits", {})
    for flag, key in (("max_jobs", "MaxNumberOfTrainingJobs"), ("max_parallel", "MaxParallelTrainingJobs")):
        if flags[flag]:
            limits[key] = flags[flag]
    limits.setdefault("MaxParallelTrainingJobs", 1)
    if flags["max_runtime"]:
        limits["MaxRuntimeInSeconds"] = flags["max_runtime"]
    ranges = config.setdefault("ParameterRanges", {})
    for flag, key in (("continuous", "ContinuousParameterRanges"), ("integer", "IntegerParameterRanges")):
        ranges.setdefault(key, []).extend(_range(f"--{flag}", t) for t in flags[flag])
    ranges.setdefault("CategoricalParameterRanges", []).extend(_categorical(t) for t in flags["categorical"])
    if flags["early_stopping"]:
        config["TrainingJobEarlyStoppingType"] = "Auto"
    if flags["seed"] is not None:
        config["RandomSeed"] = flags["seed"]
    if flags["warm_start"]:
        body["WarmStartConfig"] = {
            "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": p} for p in flags["warm_start"]],
            "WarmStartType": flags["warm_start_type"],
        }
    body["TrainingJobDefinition"] = _definition(body.get("TrainingJobDefinition", {}), flags, build_spec)
    return body


def _definition(old: dict[str, Any], flags: dict[str, Any], build_spec: Any) -> dict[str, Any]:
    # The training flags mean what they mean for `tailor train`: build that request, keep its members.
    job = build_spec(
        spec_file=None,
        name="definition",
        train=flags["train"],
        validation=flags["validation"],
        hp=flags["hp"],
        output=flags["output"],
        instance_count=None,
        instance_type=None,
        max_runtime=None,
    )
    d = dict(old)
    d.setdefault("AlgorithmSpecification", job["AlgorithmSpecification"])
    channels = {c["ChannelName"]: c for c in d.get("InputDataConfig", [])}
    channels.update({c["ChannelName"]: c for c in job["InputDataConfig"]})
    d["InputDataConfig"] = list(channels.values())
    d["StaticHyperParameters"] = {**d.get("StaticHyperParameters", {}), **job["HyperParameters"]}
    if flags["output"] or "OutputDataConfig" not in d:
        d["OutputDataConfig"] = job["OutputDataConfig"]
    return d


@tune.command("create")
@click.option("--spec", "spec_file", type=click.Path(dir_okay=False), help="CreateHyperParameterTuningJob (JSON).")
@click.option("--name", help="HyperParameterTuningJobName (<= 32 characters; default tune-<time>).")
@click.option("--strategy", type=click.Choice(STRATEGIES), help="Search strategy (default Bayesian).")
@click.option("--objective", help="Objective metric (default validation:accuracy).")
@click.option("--minimize", is_flag=True, help="Minimize the objective (default: maximize).")
@click.option("--max-jobs", type=click.IntRange(1, 500), help="MaxNumberOfTrainingJobs.")
@click.option("--max-parallel", type=click.IntRange(1, 100), help="MaxParallelTrainingJobs (default 1).")
@click.option("--max-runtime", type=click.IntRange(120), help="MaxRuntimeInSeconds of the whole tuning job.")
@click.option("--continuous", multiple=True, metavar="NAME=MIN:MAX[:SCALING]", help="A continuous range.")
@click.option("--integer", multiple=True, metavar="NAME=MIN:MAX[:SCALING]", help="An integer range.")
@click.option("--categorical", multiple=True, metavar="NAME=A,B,...", help="A categorical range.")
@click.option("--early-stopping", is_flag=True, help="TrainingJobEarlyStoppingType Auto (Hyperband pruning).")
@click.option("--seed", type=click.IntRange(0), help="RandomSeed of the search.")
@click.option("--warm-start", multiple=True, metavar="PARENT", help="A parent tuning job to warm start from.")
@click.option(
    "--warm-start-type",
    type=click.Choice(["IdenticalDataAndAlgorithm", "TransferLearning"]),
    default="IdenticalDataAndAlgorithm",
    show_default=True,
)
@click.option("--train", help="URI of the train channel.")
@click.option("--validation", help="URI of the validation channel.")
@click.option("--hp", multiple=True, metavar="KEY=VALUE", help="Static hyperparameter (repeatable).")
@click.option("--output", help="S3OutputPath of the trials' models.")
@click.option("--no-wait", is_flag=True, help="With --url: return once created.")
@_url
@_json
@click.pass_context
def create(
    ctx: click.Context, spec_file: str | None, no_wait: bool, url: str | None, as_json: bool, **flags: Any
) -> None:
    """Create a tuning job and wait for it, a line per finished trial."""
    from tailor.cli._jobs_common import open_client

    body = build_request(spec_file, flags)
    with open_client(settings_of(ctx), url) as client:
        desc = client.create_hyper_parameter_tuning_job(body)
        name = desc["HyperParameterTuningJobName"]
        click.echo(f"created tuning job {name}", err=True)
        if not client.embedded and no_wait:
            _print(desc, as_json)
            return
        desc = follow(client, name)
    _print(desc, as_json)
    _raise_failed(desc)


def follow(client: Any, name: str, poll: float = 1.0) -> dict[str, Any]:
    """Poll until the tuning job ends: a bar of finished trials on stderr and a line as each one ends."""
    import sys

    from tailor.progress import progress_bar

    desc = client.describe_hyper_parameter_tuning_job(name)
    limits = desc["HyperParameterTuningJobConfig"]["ResourceLimits"]
    total = limits.get("MaxNumberOfTrainingJobs")
    bar = progress_bar(total, name, unit="trial", file=sys.stderr, leave=True)
    reported: set[str] = set()
    try:
        while True:
            trials = _all_trials(client, name)
            for t in trials:
                settled = t["TrainingJobStatus"] in TERMINAL and t["ObjectiveStatus"] != "Pending"
                if settled and t["TrainingJobName"] not in reported:
                    reported.add(t["TrainingJobName"])
                    bar.write(_trial_line(t), file=sys.stderr)
                    bar.update(1)
            desc = client.describe_hyper_parameter_tuning_job(name)
            if desc["HyperParameterTuningJobStatus"] in TERMINAL:
                return desc
            time.sleep(poll)
    finally:
        bar.close()


def _all_trials(client: Any, name: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    token = None
    while True:
        page = client.list_training_jobs_for_hyper_parameter_tuning_job(name, MaxResults=100, NextToken=token)
        out += page["TrainingJobSummaries"]
        token = page.get("NextToken")
        if not token:
            return out


def _objective_text(t: dict[str, Any]) -> str:
    m = t.get("FinalHyperParameterTuningJobObjectiveMetric")
    return f"{m['MetricName']}={m['Value']:.6g}" if m else "-"


def _trial_line(t: dict[str, Any]) -> str:
    tuned = " ".join(f"{k}={v}" for k, v in sorted(t["TunedHyperParameters"].items()))
    why = f" ({t['FailureReason']})" if t.get("FailureReason") else ""
    return f"{t['TrainingJobName']}  {t['TrainingJobStatus']}  {_objective_text(t)}  {tuned}{why}"


def _print(desc: dict[str, Any], as_json: bool) -> None:
    from tailor.cli._jobs_common import to_json, when

    if as_json:
        click.echo(to_json(desc))
        return
    config = desc["HyperParameterTuningJobConfig"]
    objective = config.get("HyperParameterTuningJobObjective") or desc["TrainingJobDefinition"].get("TuningObjective")
    counts = desc["TrainingJobStatusCounters"]
    lines = [
        f"HyperParameterTuningJobName  {desc['HyperParameterTuningJobName']}",
        f"Status                       {desc['HyperParameterTuningJobStatus']}",
        f"Strategy                     {config['Strategy']}",
        f"Objective                    {objective['Type']} {objective['MetricName']}",
        f"Created                      {when(desc.get('CreationTime'))}",
        "Training jobs                " + (", ".join(f"{k} {v}" for k, v in counts.items() if v) or "none yet"),
    ]
    if desc.get("FailureReason"):
        lines.append(f"FailureReason                {desc['FailureReason']}")
    for key in ("BestTrainingJob", "OverallBestTrainingJob"):
        best = desc.get(key)
        if best:
            lines.append(f"{key:<29}{best['TrainingJobName']}  {_objective_text(best)}")
            lines += [f"  {k:<27}{v}" for k, v in sorted(best["TunedHyperParameters"].items())]
    click.echo("\n".join(lines))


def _raise_failed(desc: dict[str, Any]) -> None:
    if desc["HyperParameterTuningJobStatus"] == "Failed":
        raise AlgorithmError(
            f"tuning job {desc['HyperParameterTuningJobName']} failed: {desc.get('FailureReason', 'unknown reason')}"
        )


@tune.command("describe")
@click.argument("name")
@_url
@_json
@click.pass_context
def describe(ctx: click.Context, name: str, url: str | None, as_json: bool) -> None:
    """DescribeHyperParameterTuningJob: status, counters and the best training job."""
    from tailor.cli._jobs_common import call

    _print(call(ctx, url, lambda c: c.describe_hyper_parameter_tuning_job(name)), as_json)


@tune.command("list")
@click.option("--name-contains")
@click.option("--status", type=click.Choice(["InProgress", "Completed", "Failed", "Stopping", "Stopped"]))
@click.option("--max-results", type=click.IntRange(1, 100), default=50, show_default=True)
@_url
@_json
@click.pass_context
def list_tuning_jobs(
    ctx: click.Context, name_contains: str | None, status: str | None, max_results: int, url: str | None, as_json: bool
) -> None:
    """List tuning jobs, newest first."""
    from tailor.cli._jobs_common import call, echo_json, table, when

    out = call(
        ctx,
        url,
        lambda c: c.list_hyper_parameter_tuning_jobs(
            NameContains=name_contains, StatusEquals=status, MaxResults=max_results
        ),
    )
    if echo_json(out, as_json):
        return
    rows = [
        [
            s["HyperParameterTuningJobName"],
            s["HyperParameterTuningJobStatus"],
            s["Strategy"],
            f"{s['TrainingJobStatusCounters']['Completed']}/{s['ResourceLimits'].get('MaxNumberOfTrainingJobs', '-')}",
            when(s["CreationTime"]),
        ]
        for s in out["HyperParameterTuningJobSummaries"]
    ]
    click.echo(table(rows, ["NAME", "STATUS", "STRATEGY", "COMPLETED", "CREATED"]))


@tune.command("trials")
@click.argument("name")
@click.option(
    "--sort-by",
    type=click.Choice(["FinalObjectiveMetricValue", "Name", "CreationTime", "Status"]),
    default="FinalObjectiveMetricValue",
    show_default=True,
)
@click.option("--ascending", is_flag=True)
@_url
@_json
@click.pass_context
def trials(ctx: click.Context, name: str, sort_by: str, ascending: bool, url: str | None, as_json: bool) -> None:
    """The tuning job's training jobs with their hyperparameters and objective (best first)."""
    from tailor.cli._jobs_common import call, echo_json, table

    out = call(
        ctx,
        url,
        lambda c: c.list_training_jobs_for_hyper_parameter_tuning_job(
            name, SortBy=sort_by, SortOrder="Ascending" if ascending else "Descending", MaxResults=100
        ),
    )
    if echo_json(out, as_json):
        return
    rows = [
        [
            t["TrainingJobName"],
            t["TrainingJobStatus"],
            _objective_text(t),
            " ".join(f"{k}={v}" for k, v in sorted(t["TunedHyperParameters"].items())),
            t.get("FailureReason", ""),
        ]
        for t in out["TrainingJobSummaries"]
    ]
    click.echo(table(rows, ["TRAINING JOB", "STATUS", "OBJECTIVE", "HYPERPARAMETERS", "REASON"]))


@tune.command("stop")
@click.argument("name")
@_url
@click.pass_context
def stop(ctx: click.Context, name: str, url: str | None) -> None:
    """StopHyperParameterTuningJob: stop its running training jobs; it ends Stopped."""
    from tailor.cli._jobs_common import call

    desc = call(ctx, url, lambda c: c.stop_hyper_parameter_tuning_job(name))
    click.echo(f"{name}: {desc['HyperParameterTuningJobStatus']}")


@tune.command("wait")
@click.argument("name")
@_url
@_json
@click.pass_context
def wait(ctx: click.Context, name: str, url: str | None, as_json: bool) -> None:
    """Wait for a tuning job to end, a line per finished trial."""
    from tailor.cli._jobs_common import open_client

    with open_client(settings_of(ctx), url) as client:
        desc = follow(client, name)
    _print(desc, as_json)
    _raise_failed(desc)


commands: list[click.Command] = [tune]
