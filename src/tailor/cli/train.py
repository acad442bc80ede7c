"""`tailor train`: create a training job from flags or a CreateTrainingJob JSON file, and follow it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from tailor.cli.root import settings_of
from tailor.errors import AlgorithmError, ValidationError

DEFAULT_OUTPUT = "s3://tailor/output"


def _hyperparameters(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValidationError(f"--hp {pair!r}: use key=value, e.g. --hp epochs=10")
        out[key.strip()] = value.strip()
    return out


def build_spec(
    *,
    spec_file: str | None,
    name: str | None,
    train: str | None,
    validation: str | None,
    hp: tuple[str, ...],
    output: str | None,
    instance_count: int | None,
    instance_type: str | None,
    max_runtime: int | None,
) -> dict[str, Any]:
    """A CreateTrainingJob request: the JSON file (if any) with flags layered on top."""
    spec: dict[str, Any] = {}
    if spec_file:
        try:
            spec = json.loads(Path(spec_file).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValidationError(f"--spec {spec_file}: not a readable JSON job file ({err})") from None
        if not isinstance(spec, dict):
            raise ValidationError(f"--spec {spec_file}: expected a JSON object (CreateTrainingJob request)")
    if name:
        spec["TrainingJobName"] = name
    spec.setdefault("TrainingJobName", f"image-classification-{time.strftime('%Y%m%d-%H%M%S')}")
    spec.setdefault("AlgorithmSpecification", {"TrainingImage": "tailor/image-classification"})
    channels = {c["ChannelName"]: c for c in spec.get("InputDataConfig", [])}
    for channel, uri in (("train", train), ("validation", validation)):
        if uri:
            channels[channel] = {"ChannelName": channel, "DataSource": {"S3DataSource": {"S3Uri": uri}}}
    spec["InputDataConfig"] = list(channels.values())
    spec["HyperParameters"] = {**spec.get("HyperParameters", {}), **_hyperparameters(hp)}
    if output or "OutputDataConfig" not in spec:
        spec["OutputDataConfig"] = {"S3OutputPath": output or DEFAULT_OUTPUT}
    resources = spec.setdefault("ResourceConfig", {})
    if instance_count:
        resources["InstanceCount"] = instance_count
    if instance_type:
        resources["InstanceType"] = instance_type
    if max_runtime:
        spec.setdefault("StoppingCondition", {})["MaxRuntimeInSeconds"] = max_runtime
    return spec


@click.command("train")
@click.option("--spec", "spec_file", type=click.Path(dir_okay=False), help="CreateTrainingJob request (JSON).")
@click.option("--name", help="TrainingJobName (default image-classification-<time>).")
@click.option("--train", help="URI of the train channel (s3://; a local path without --url).")
@click.option("--validation", help="URI of the validation channel.")
@click.option("--hp", multiple=True, metavar="KEY=VALUE", help="Hyperparameter (repeatable).")
@click.option("--output", help=f"S3OutputPath (default {DEFAULT_OUTPUT}).")
@click.option("--instance-count", type=int, help="InstanceCount (> 1 launches torchrun).")
@click.option("--instance-type", help="InstanceType, recorded as given.")
@click.option("--max-runtime", type=int, help="StoppingCondition.MaxRuntimeInSeconds.")
@click.option("--follow", "-f", is_flag=True, help="Stream the log with an epoch progress bar.")
@click.option("--url", help="Tailor server URL (default $TAILOR_URL); none: the job runs in this process (and waits).")
@click.option(
    "--local",
    "local_dir",
    type=click.Path(file_okay=False, exists=True),
    help="Run the built-in algorithm directly on a prepared job dir (no job record).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the final DescribeTrainingJob as JSON.")
@click.pass_context
def train(
    ctx: click.Context, follow: bool, url: str | None, local_dir: str | None, as_json: bool, **flags: Any
) -> None:
    """Create a training job (SageMaker's CreateTrainingJob shape) and follow it."""
    if local_dir:
        from tailor.algorithms.image_classification.contract import run

        rc = run(Path(local_dir))
        if rc != 0:
            failure = Path(local_dir) / "output" / "failure"
            reason = failure.read_text().strip() if failure.is_file() else f"exit status {rc}"
            raise AlgorithmError(f"training in {local_dir} failed: {reason}")
        click.echo(f"model written to {Path(local_dir) / 'model' / 'model.tar.gz'}")
        return
    from tailor.cli._jobs_common import echo_result, open_client
    from tailor.cli._jobs_common import follow as follow_job

    spec = build_spec(**flags)  # the spec file's and the flags' parameters, by name
    with open_client(settings_of(ctx), url) as client:
        job = client.create_training_job(spec)
        click.echo(f"created training job {job.name}", err=True)
        if not client.embedded and not follow:
            echo_result(job.describe(), as_json)
            return
        # In-process jobs live in this process: wait for the end, streaming when asked.
        desc = follow_job(job) if follow else job.wait()
        echo_result(desc, as_json)
        if desc["TrainingJobStatus"] == "Failed":
            raise AlgorithmError(f"training job {job.name} failed: {desc.get('FailureReason', 'unknown reason')}")


commands: list[click.Command] = [train]
