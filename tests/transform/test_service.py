"""Transform jobs through the in-process SDK: outputs, .rec records, manifests, bad images, stop, restart."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from tailor.client import Client
from tailor.core import Tailor
from tailor.data.recordio import IRHeader, pack, write_records
from tailor.db import utcnow
from tailor.errors import ValidationError
from tailor.serving.loader import load_model
from tailor.serving.preprocess import decode_image
from tailor.settings import Settings
from tailor.transform.spec import parse_transform_spec
from tailor.transform.store import TransformJobRow
from tests.serving.artifacts import png_bytes
from tests.transform.conftest import FOLDERS, MODEL, put_images, recordio_request, request

pytestmark = pytest.mark.timeout(120)
slow = pytest.mark.slow  # model worker processes


def _outs(settings: Settings, prefix: str) -> dict[str, str]:
    root = settings.buckets_dir / "out" / prefix
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}


@slow
def test_prefix_of_class_folders_completes_with_the_online_answers(client: Client, settings: Settings) -> None:
    keys = put_images(settings, "imgs", per_class=20)
    client.create_transform_job(request("tj-prefix", "s3://data/imgs/", "s3://out/preds"))
    desc = client.wait_transform_job("tj-prefix", timeout=90, poll=0.1)
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    progress = desc["TransformProgress"]
    assert progress["RecordsDone"] == progress["RecordsTotal"] == len(keys) == progress["ObjectsDone"]
    assert progress["RecordsFailed"] == 0 and progress["RecordsPerSecond"] > 0
    outs = _outs(settings, "preds")
    assert sorted(outs) == sorted(f"{k}.out" for k in keys)  # <S3OutputPath>/<key relative to the prefix>.out
    # One line {"prediction": [...]} per image, equal to what the one load_model + decode_image give online.
    model = load_model(client.tailor.hosting.model_dir(MODEL))
    images = np.stack([decode_image(png_bytes(1000 * c + i), (1, 28, 28)) for c in range(3) for i in range(20)])
    expected = model.predict(images)
    got = np.array([json.loads(outs[f"{k}.out"])["prediction"] for k in keys])
    assert all(outs[f"{k}.out"].endswith("}\n") and outs[f"{k}.out"].count("\n") == 1 for k in keys)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # The summary: counts per predicted class, and accuracy + confusion from the class folders.
    summary = progress["Summary"]
    names = model.meta.class_names
    predicted = [names[i] for i in expected.argmax(1)]
    assert summary["PredictedCounts"] == {n: predicted.count(n) for n in set(predicted)}
    truth = [FOLDERS[c] for c in range(3) for _ in range(20)]
    correct = sum(p == t for p, t in zip(predicted, truth, strict=True))
    assert summary["Labelled"] == 60 and summary["Correct"] == correct
    assert sum(map(sum, summary["ConfusionMatrix"])) == 60
    listed = client.list_transform_jobs(StatusEquals="Completed")["TransformJobSummaries"]
    assert [j["TransformJobName"] for j in listed] == ["tj-prefix"]


@slow
def test_recordio_lines_manifest_json_and_single_record(client: Client, settings: Settings) -> None:
    """A .rec answers one line per record (AssembleWith Line); a manifest names its own objects; SingleRecord
    with Accept application/json writes bare probability arrays, here from two instances."""
    rec_dir = settings.buckets_dir / "data" / "recs"
    rec_dir.mkdir(parents=True)
    write_records(rec_dir / "a.rec", [(i, pack(IRHeader(0, 0.0, i), png_bytes(i))) for i in range(7)])
    put_images(settings, "imgs", per_class=2)
    manifest = ["Sneaker/0000.png", "Bag/0001.png"]
    (settings.buckets_dir / "data" / "list.json").write_text(json.dumps([{"prefix": "s3://data/imgs/"}, *manifest]))
    client.create_transform_job(recordio_request("tj-rec", "s3://data/recs/", "s3://out/rec"))
    client.create_transform_job(
        request(
            "tj-manifest",
            "",
            "s3://out/man",
            BatchStrategy="SingleRecord",
            TransformInput={
                "DataSource": {"S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": "s3://data/list.json"}},
                "ContentType": "application/x-image",
            },
            TransformOutput={"S3OutputPath": "s3://out/man", "Accept": "application/json"},
            TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 2},  # two workers share the cores
        )
    )
    for name in ("tj-rec", "tj-manifest"):
        assert client.wait_transform_job(name, timeout=90, poll=0.1)["TransformJobStatus"] == "Completed"
    rec_out = _outs(settings, "rec")
    assert list(rec_out) == ["a.rec.out"]  # the .idx beside the .rec is no input
    lines = rec_out["a.rec.out"].splitlines()
    assert len(lines) == 7 and all(len(json.loads(line)["prediction"]) == 10 for line in lines)
    man_out = _outs(settings, "man")
    assert sorted(man_out) == sorted(f"{k}.out" for k in manifest)
    probs = json.loads(man_out["Sneaker/0000.png.out"])
    assert isinstance(probs, list) and len(probs) == 10 and abs(sum(probs) - 1) < 1e-4


@slow
def test_a_bad_image_fails_the_job_with_the_count_and_no_output_for_it(client: Client, settings: Settings) -> None:
    """SageMaker's behaviour: the other objects are transformed, the bad object gets no .out, the job Fails."""
    keys = put_images(settings, "mixed", per_class=4)
    (settings.buckets_dir / "data" / "mixed" / "Bag" / "broken.png").write_bytes(b"this is not an image")
    client.create_transform_job(request("tj-bad", "s3://data/mixed/", "s3://out/bad"))
    desc = client.wait_transform_job("tj-bad", timeout=90, poll=0.1)
    assert desc["TransformJobStatus"] == "Failed"
    reason = desc["FailureReason"]
    assert reason.startswith("ClientError: 1 of 13 records failed"), reason
    assert "s3://data/mixed/Bag/broken.png" in reason and "not a JPEG or PNG" in reason
    assert sorted(_outs(settings, "bad")) == sorted(f"{k}.out" for k in keys)
    assert desc["TransformProgress"]["RecordsFailed"] == 1 and desc["TransformProgress"]["RecordsDone"] == 12


@slow
def test_stop_leaves_only_whole_outputs(client: Client, settings: Settings) -> None:
    keys = put_images(settings, "many", per_class=400)
    spec = request("tj-stop", "s3://data/many/", "s3://out/stop", BatchStrategy="SingleRecord")
    spec["MaxConcurrentTransforms"] = 1  # one image at a time: slow enough to stop half-way
    client.create_transform_job(spec)
    while client.describe_transform_job("tj-stop")["TransformProgress"]["ObjectsDone"] < 20:
        assert client.describe_transform_job("tj-stop")["TransformJobStatus"] == "InProgress"
    client.stop_transform_job("tj-stop")
    desc = client.wait_transform_job("tj-stop", timeout=60, poll=0.1)
    assert desc["TransformJobStatus"] == "Stopped" and "FailureReason" not in desc
    root = settings.buckets_dir / "out" / "stop"
    files = [p for p in root.rglob("*") if p.is_file()]
    assert 20 <= len(files) < len(keys)
    assert not [p for p in files if not p.name.endswith(".png.out")]  # no temp file left behind
    assert all(len(json.loads(p.read_text())["prediction"]) == 10 for p in files)  # each one whole
    with pytest.raises(ValidationError, match="is Stopped: only InProgress"):
        client.stop_transform_job("tj-stop")


@slow
def test_stop_with_grouped_writes_leaves_whole_outputs_and_counts_them(client: Client, settings: Settings) -> None:
    """MultiRecord writes each invocation's .out files as one group: a stop still leaves only whole files, no
    temp file, and ObjectsDone equal to the files written."""
    keys = put_images(settings, "lots", per_class=700)
    client.create_transform_job(request("tj-stop-multi", "s3://data/lots/", "s3://out/multi"))
    while client.describe_transform_job("tj-stop-multi")["TransformProgress"]["ObjectsDone"] < 64:
        assert client.describe_transform_job("tj-stop-multi")["TransformJobStatus"] == "InProgress"
    client.stop_transform_job("tj-stop-multi")
    desc = client.wait_transform_job("tj-stop-multi", timeout=60, poll=0.1)
    assert desc["TransformJobStatus"] == "Stopped"
    root = settings.buckets_dir / "out" / "multi"
    files = [p for p in root.rglob("*") if p.is_file()]
    assert 64 <= len(files) < len(keys) and len(files) == desc["TransformProgress"]["ObjectsDone"]
    assert not [p for p in files if not p.name.endswith(".png.out")]  # no temp file left behind
    assert all(len(json.loads(p.read_text())["prediction"]) == 10 for p in files)  # each one whole


@slow
def test_an_output_that_cannot_be_written_fails_the_job_with_the_reason(client: Client, settings: Settings) -> None:
    """A write group fails on its writer thread: the job stops sending and ends Failed, saying which file."""
    put_images(settings, "few", per_class=30)
    (settings.buckets_dir / "out").mkdir(parents=True, exist_ok=True)
    (settings.buckets_dir / "out" / "blocked").write_text("a file where the output folder should be")
    client.create_transform_job(request("tj-blocked", "s3://data/few/", "s3://out/blocked/preds"))
    desc = client.wait_transform_job("tj-blocked", timeout=90, poll=0.1)
    assert desc["TransformJobStatus"] == "Failed"
    reason = desc["FailureReason"]
    assert reason.startswith("InternalFailure: cannot write $TAILOR_HOME/buckets/out/blocked/preds/"), reason
    assert desc["TransformProgress"]["ObjectsDone"] == 0


@slow
def test_records_of_a_rec_keep_their_order_across_invocations(client: Client, settings: Settings) -> None:
    """150 records go out as three invocations (64 + 64 + 22) answered as they come; the .out holds one line
    per record in the .rec's order (AssembleWith Line), each the online answer for that record."""
    rec_dir = settings.buckets_dir / "data" / "long"
    rec_dir.mkdir(parents=True)
    write_records(rec_dir / "b.rec", [(i, pack(IRHeader(0, 0.0, i), png_bytes(500 + i))) for i in range(150)])
    spec = recordio_request("tj-order", "s3://data/long/", "s3://out/order", MaxConcurrentTransforms=3)
    client.create_transform_job(spec)
    assert client.wait_transform_job("tj-order", timeout=90, poll=0.1)["TransformJobStatus"] == "Completed"
    text = _outs(settings, "order")["b.rec.out"]
    assert text.endswith("}\n") and text.count("\n") == 150
    got = np.array([json.loads(line)["prediction"] for line in text.splitlines()])
    model = load_model(client.tailor.hosting.model_dir(MODEL))
    expected = model.predict(np.stack([decode_image(png_bytes(500 + i), (1, 28, 28)) for i in range(150)]))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_refusals_are_one_clear_line(client: Client, settings: Settings) -> None:
    put_images(settings, "few", per_class=1)
    base = request("tj-x", "s3://data/few/", "s3://out/x")
    cases = [
        ({"DataProcessing": {"InputFilter": "$"}}, "DataProcessing"),
        ({"MaxPayloadInMB": 20}, "at most 6 MB per invocation"),
        ({"ModelName": "nope"}, "Could not find model 'nope'"),
        ({"BatchStrategy": "Batchy"}, "use MultiRecord or SingleRecord"),
        ({"TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 99}}, "InstanceCount 99"),
        ({"TransformInput": {**base["TransformInput"], "SplitType": "Line"}}, "use SplitType None"),
    ]
    for change, message in cases:
        with pytest.raises(ValidationError, match=message):
            client.create_transform_job({**base, **change})
    with pytest.raises(ValidationError, match="no input objects at s3://data/none/"):
        client.create_transform_job(request("tj-y", "s3://data/none/", "s3://out/y"))
    (settings.buckets_dir / "data" / "evil.json").write_text(json.dumps([{"prefix": "file:///etc/"}, "passwd"]))
    evil = request("tj-z", "", "s3://out/z")
    evil["TransformInput"]["DataSource"]["S3DataSource"] = {
        "S3DataType": "ManifestFile",
        "S3Uri": "s3://data/evil.json",
    }
    with pytest.raises(ValidationError, match="must be an s3://bucket/key URI"):
        client.create_transform_job(evil)
    assert client.list_transform_jobs()["TransformJobSummaries"] == []


def test_a_restart_fails_the_jobs_a_dead_server_ran(settings: Settings) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    with Tailor.open(settings) as tailor, tailor.db.session() as s:
        now = utcnow()
        s.add(
            TransformJobRow(
                name="orphan",
                arn="arn:aws:sagemaker:us-east-1:000000000000:transform-job/orphan",
                spec=parse_transform_spec(request("orphan", "s3://data/x/", "s3://out/x")),
                status="InProgress",
                creation_time=now,
                last_modified_time=now,
                owner_pid=dead.pid,
                owner_start_time=1.0,
            )
        )
    assert os.getpid() != dead.pid
    with Tailor.open(settings) as tailor:  # the next server: its recovery fails the orphan, with the reason
        desc = tailor.transform.describe("orphan")
    assert desc["TransformJobStatus"] == "Failed" and "the server restarted while the job ran" in desc["FailureReason"]
