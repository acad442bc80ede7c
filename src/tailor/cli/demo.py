"""`tailor demo`: the main job end to end on Fashion-MNIST, as a new user would run it.

prepare (fetch → IDX → JPEG class folders → .lst 70/30 → .rec) → bucket → train → test accuracy → curves →
deploy → invoke a few test images → endpoint metrics. The data steps run the very `tailor data …` commands a
user would type (they are printed); training and hosting go through the SDK against a `tailor server` this
command starts on a free loopback port, signed with the home's admin credentials.

Budget: the whole demo is meant to finish in ≤ 5 minutes on 2 cores (data ≈ 45 s, training = --time-budget,
deploy + invoke ≈ 15 s) and reach ≥ 91.1 % test accuracy (the seed's 40-epoch K80 figure).
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tailor.cli.root import settings_of
from tailor.errors import ServiceUnavailableError

if TYPE_CHECKING:
    from tailor.settings import Settings

BUCKET = "tailor-demo"


def _step(title: str) -> None:
    click.secho(f"\n== {title}", bold=True)


def _run_cli(ctx: click.Context, *args: str) -> None:
    """Run a `tailor …` command in this process, echoing it first so the user can paste it later."""
    home = str(settings_of(ctx).home)
    click.secho("$ tailor " + " ".join(shlex.quote(a) for a in args), fg="cyan")
    ctx.find_root().command.main(args=["--home", home, *args], prog_name="tailor", standalone_mode=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(settings: Settings, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = _free_port()
    cmd = [sys.executable, "-m", "tailor.cli.main", "--home", str(settings.home), "server", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceUnavailableError(f"the Tailor server exited with code {proc.returncode}; see {log}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise ServiceUnavailableError(f"the Tailor server did not answer on {url} within 60 s; see {log}")


def _ensure_credentials(settings: Settings) -> None:
    from tailor.auth.keys import init_admin, resolve_credentials

    if resolve_credentials(settings) is None:
        _, path = init_admin(settings)
        click.echo(f"created an admin access key; credentials in {path} (mode 0600)")


def _prepare_data(ctx: click.Context, work: Path, limit: int | None) -> dict[str, Path]:
    _step("1/6 Prepare data: Fashion-MNIST → JPEG class folders → .lst 70/30 → RecordIO")
    lim = ["--limit", str(limit)] if limit else []
    # Paths are relative to the work dir (the current directory) so the echoed commands read like a tutorial.
    _run_cli(ctx, "data", "fetch", "fashion-mnist")
    _run_cli(ctx, "data", "import-idx", "--dataset", "fashion-mnist", *lim, "images")
    _run_cli(ctx, "data", "im2rec", "--list", "--recursive", "--train-ratio", "0.7", "fmnist", "images/train")
    # im2rec packs every PREFIX*.lst, so the test list's prefix must not start with the training prefix.
    _run_cli(ctx, "data", "im2rec", "--list", "--recursive", "--no-shuffle", "heldout-test", "images/test")
    _run_cli(ctx, "data", "im2rec", "--pass-through", "--num-thread", "2", "fmnist", "images/train")
    _run_cli(ctx, "data", "im2rec", "--pass-through", "heldout-test", "images/test")
    return {
        "train": work / "fmnist_train.rec",
        "validation": work / "fmnist_val.rec",
        "test": work / "heldout-test.rec",
    }


def _upload(ctx: click.Context, recs: dict[str, Path], run: str) -> dict[str, str]:
    _step("2/6 Upload to a bucket")
    uris = {}
    for channel in ("train", "validation"):
        uri = f"s3://{BUCKET}/{run}/{channel}/"
        # cp takes the .idx and the class-name map (.classes.json) along, so the model answers "Shirt", not "6".
        _run_cli(ctx, "data", "cp", recs[channel].name, uri)
        uris[channel] = uri
    return uris


def _train(client: Any, run: str, uris: dict[str, str], num_train: int, budget: int) -> Any:
    _step(f"3/6 Train (Tailor's default fast network, {budget} s time budget)")
    hp = {
        "num_classes": "10",
        "num_training_samples": str(num_train),
        "image_shape": "1,28,28",
        "time_budget": str(budget),
    }
    click.echo("hyperparameters: " + ", ".join(f"{k}={v}" for k, v in hp.items()))
    job = client.create_training_job(
        TrainingJobName=run,
        AlgorithmSpecification={"TrainingImage": "tailor/image-classification", "TrainingInputMode": "File"},
        HyperParameters=hp,
        InputDataConfig=[
            {
                "ChannelName": ch,
                "ContentType": "application/x-recordio",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
            }
            for ch, uri in uris.items()
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/output"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": budget * 4 + 300},
    )
    desc = _follow(job)
    if desc["TrainingJobStatus"] != "Completed":
        from tailor.errors import AlgorithmError

        raise AlgorithmError(f"training job {run} ended {desc['TrainingJobStatus']}: {desc.get('FailureReason', '')}")
    for m in desc.get("FinalMetricDataList", []):
        click.echo(f"  {m['MetricName']:22} {m['Value']:.6f}")
    return desc


def _follow(job: Any) -> dict[str, Any]:
    """Print epoch lines (not every batch) while the job runs."""
    pos = 0
    while True:
        chunk = job.client.training_job_logs(job.name, pos)
        pos = chunk["NextOffset"]
        for line in chunk["Text"].splitlines():
            if "Epoch[" in line and ("accuracy=" in line or "Time cost" in line) and "Batch" not in line:
                click.echo("  " + line.split("] ", 1)[-1] if "INFO]" in line else "  " + line)
        if chunk["Complete"] and not chunk["Text"]:
            return job.describe()
        if not chunk["Text"]:
            time.sleep(1.0)


def _test_accuracy(settings: Settings, model_uri: str, test_rec: Path, work: Path) -> float:
    _step("4/6 Test accuracy on the held-out test images (never seen in training or validation)")
    import numpy as np

    from tailor.data.loader import load_channel
    from tailor.serving.loader import load_model
    from tailor.storage import Storage

    tarball = Storage(settings).download_file(model_uri, work / "model.tar.gz")
    model = load_model(tarball)
    chan = work / "test-channel"
    chan.mkdir(exist_ok=True)
    for f in (test_rec, test_rec.with_suffix(".idx")):
        (chan / f.name).unlink(missing_ok=True)
        (chan / f.name).symlink_to(f)
    data = load_channel(chan, "application/x-recordio", channels=1, size=(28, 28), cache_dir=settings.cache_dir)
    correct = 0
    for start in range(0, len(data.labels), 1000):
        probs = model.predict(np.ascontiguousarray(data.images[start : start + 1000]))
        correct += int((probs.argmax(1) == data.labels[start : start + 1000].astype(int)).sum())
    acc = correct / len(data.labels)
    seed = "the seed's 40-epoch K80 run reached 0.9110"
    click.secho(f"test accuracy: {acc:.4f} ({correct}/{len(data.labels)}); {seed}", bold=True)
    return acc


def _deploy_and_invoke(ctx: click.Context, url: str, run: str, work: Path, keep: bool) -> None:
    _step("5/6 Deploy: model + endpoint config + endpoint (CPU, dynamic batching)")
    _run_cli(ctx, "deploy", run, "--url", url)
    _step("6/6 Invoke the endpoint with test images (one per class)")
    test_dir = Path("images/test")
    samples = [sorted(d.iterdir())[0] for d in sorted(test_dir.iterdir()) if d.is_dir()]
    click.echo("(each file's folder is its true label)")
    _run_cli(ctx, "invoke", run, *(str(p) for p in samples), "--url", url)
    _run_cli(ctx, "endpoints", "metrics", run, "--url", url)
    if not keep:
        _run_cli(ctx, "endpoints", "delete", run, "--url", url)


@click.command("demo")
@click.option("--time-budget", type=click.IntRange(5, 3600), default=150, show_default=True, help="Training seconds.")
@click.option("--limit", type=click.IntRange(100), default=None, help="Use only the first N images of each split.")
@click.option("--keep-endpoint", is_flag=True, help="Leave the endpoint (and the server) running at the end.")
@click.pass_context
def demo(ctx: click.Context, time_budget: int, limit: int | None, keep_endpoint: bool) -> None:
    """Fashion-MNIST end to end: prepare → RecordIO → train → deploy → invoke."""
    from tailor.client import Client

    settings = settings_of(ctx).ensure_dirs()
    run = time.strftime("fmnist-demo-%Y%m%d-%H%M%S")
    work = settings.home / "demo" / run
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    t0 = time.monotonic()
    click.echo(f"Tailor demo {run}: home {settings.home}, work dir {work}")
    recs = _prepare_data(ctx, work, limit)
    uris = _upload(ctx, recs, run)
    _ensure_credentials(settings)
    server, url = _start_server(settings, work / "server.log")
    click.echo(f"Tailor server on {url} (log {work / 'server.log'})")
    try:
        with Client(url=url, settings=settings) as client:
            num_train = sum(1 for _ in (work / "fmnist_train.lst").open())
            desc = _train(client, run, uris, num_train, time_budget)
            model_uri = desc["ModelArtifacts"]["S3ModelArtifacts"]
            _test_accuracy(settings, model_uri, recs["test"], work)
            _run_cli(ctx, "jobs", "plot", run, "--out", str(work / "curves.png"))
            _deploy_and_invoke(ctx, url, run, work, keep_endpoint)
    finally:
        if not keep_endpoint:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    click.secho(f"\ndemo finished in {time.monotonic() - t0:.0f} s; curves: {work / 'curves.png'}", bold=True)
    if keep_endpoint:
        click.echo(f"server still running at {url} (pid {server.pid}); endpoint {run} is InService")


commands: list[click.Command] = [demo]
