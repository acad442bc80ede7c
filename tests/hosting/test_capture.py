"""Data capture without model workers: the config's validation, SageMaker's record format (byte for byte what
``json.dumps`` writes) and file layout, sampling, capture options, writes on the interval, on close and by file
size, and a full queue that drops (counted) instead of blocking."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tailor.db import Database
from tailor.errors import ValidationError
from tailor.hosting.capture import CaptureConfigs, DataCapture, parse_config
from tailor.hosting.capture_records import decode
from tailor.hosting.logs import EndpointLogs
from tailor.settings import Settings
from tailor.storage import Storage

_FILE = re.compile(r"^\d{4}/\d{2}/\d{2}/\d{2}/\d{2}-\d{2}-\d{3}-[0-9a-f-]{36}\.jsonl$")


def config(percent: int = 100, mode: str = "InputAndOutput", **extra: Any) -> dict[str, Any]:
    return {
        "EnableCapture": True,
        "InitialSamplingPercentage": percent,
        "DestinationS3Uri": "s3://capture/data",
        "CaptureOptions": [{"CaptureMode": mode}],
        **extra,
    }


@pytest.fixture
def capture(settings: Settings) -> DataCapture:
    db = Database(settings).create_all()
    return DataCapture(CaptureConfigs(db), Storage(settings), EndpointLogs(settings), flush_every_s=0.2)


def records(settings: Settings, endpoint: str, variant: str = "AllTraffic") -> list[tuple[str, dict[str, Any]]]:
    root = settings.buckets_dir / "capture" / "data" / endpoint / variant
    out = []
    for f in sorted(root.rglob("*.jsonl")):
        rel = f.relative_to(root).as_posix()
        out += [(rel, json.loads(line)) for line in f.read_text().splitlines()]
    return out


def test_records_are_sagemakers_json_lines_in_its_layout(capture: DataCapture, settings: Settings) -> None:
    header = {"JsonContentTypes": ["application/json"], "CsvContentTypes": ["text/csv"]}
    capture.configs.put("endpoint", "ep", parse_config(config(CaptureContentTypeHeader=header)))
    for i in range(5):
        capture.offer("ep", "AllTraffic", "image/png", b"\x89PNG" + bytes([i]), "application/json", b"[0.25, 0.75]")
    capture.offer("ep", "AllTraffic", "text/csv", b"1,2,3", "application/json", b"[1.0]")
    capture.close()
    got = records(settings, "ep")
    stats = capture.stats()
    assert len(got) == 6 and (stats["captured"], stats["written"], stats["dropped"], stats["files"]) == (6, 6, 0, 1)
    path, first = got[0]
    assert _FILE.match(path), path
    assert set(first) == {"captureData", "eventMetadata", "eventVersion"} and first["eventVersion"] == "0"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", first["eventMetadata"]["inferenceTime"])
    assert path.startswith(first["eventMetadata"]["inferenceTime"][:13].replace("-", "/").replace("T", "/"))
    inp, out = first["captureData"]["endpointInput"], first["captureData"]["endpointOutput"]
    assert (inp["observedContentType"], inp["mode"], inp["encoding"]) == ("image/png", "INPUT", "BASE64")
    assert decode(inp) == b"\x89PNG\x00"
    assert out == {
        "observedContentType": "application/json",
        "mode": "OUTPUT",
        "data": "[0.25, 0.75]",
        "encoding": "JSON",
    }
    csv = got[-1][1]["captureData"]["endpointInput"]
    assert (csv["data"], csv["encoding"]) == ("1,2,3", "CSV")
    assert len({r["eventMetadata"]["eventId"] for _, r in got}) == 6


def test_no_content_type_header_means_base64_and_input_only_keeps_no_output(
    capture: DataCapture, settings: Settings
) -> None:
    capture.configs.put("endpoint", "inonly", parse_config(config(mode="Input")))
    capture.offer("inonly", "A", "application/json", b'{"x": 1}', "application/json", b"[1]")
    capture.close()
    ((_, rec),) = records(settings, "inonly", "A")
    assert set(rec["captureData"]) == {"endpointInput"}
    assert rec["captureData"]["endpointInput"]["encoding"] == "BASE64"  # SageMaker's default
    assert decode(rec["captureData"]["endpointInput"]) == b'{"x": 1}'


def test_sampling_zero_and_disabled_capture_write_nothing(capture: DataCapture, settings: Settings) -> None:
    capture.configs.put("endpoint", "zero", parse_config(config(percent=0)))
    capture.configs.put("endpoint", "off", parse_config({**config(), "EnableCapture": False}))
    capture.configs.put("endpoint", "half", parse_config(config(percent=50)))
    for _ in range(400):
        for name in ("zero", "off", "half", "none"):
            capture.offer(name, "AllTraffic", "image/png", b"x", "application/json", b"[1]")
    capture.close()
    assert records(settings, "zero") == [] and records(settings, "off") == [] and records(settings, "none") == []
    assert 120 <= len(records(settings, "half")) <= 280  # binomial(400, 0.5): 7 sigma either side


def test_a_full_queue_drops_and_counts_instead_of_blocking(settings: Settings) -> None:
    db = Database(settings).create_all()
    capture = DataCapture(CaptureConfigs(db), Storage(settings), EndpointLogs(settings), queue_max=3)
    capture.configs.put("endpoint", "ep", parse_config(config()))
    capture._start = lambda: None  # type: ignore[method-assign]  # no writer: the queue only fills
    for _ in range(10):
        capture.offer("ep", "AllTraffic", "image/png", b"x", "application/json", b"[1]")
    assert (capture.stats()["captured"], capture.stats()["dropped"]) == (3, 7)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"InitialSamplingPercentage": 101}, "InitialSamplingPercentage must be an integer 0..100"),
        ({"CaptureOptions": []}, "CaptureOptions must list 1 to 32"),
        ({"CaptureOptions": [{"CaptureMode": "Both"}]}, "CaptureOptions\\[0\\]"),
        ({"DestinationS3Uri": "ftp://x/y"}, "unsupported URI scheme"),
        ({"KmsKeyId": "alias/k"}, "KmsKeyId is not supported"),
        ({"CaptureContentTypeHeader": {"JsonContentTypes": ["not a type"]}}, "JsonContentTypes must list"),
        ({"Extra": 1}, "unknown member"),
    ],
)
def test_bad_configs_are_refused_with_one_line(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_config({**config(), **change})


def test_a_write_that_fails_is_counted_and_logged(capture: DataCapture, settings: Settings) -> None:
    capture.configs.put("endpoint", "ep", parse_config(config()))
    (settings.buckets_dir / "capture").mkdir(parents=True)
    (settings.buckets_dir / "capture" / "data").write_text("a file where the prefix's folder should be")
    capture.logs.event("ep", "endpoint InService")
    capture.offer("ep", "AllTraffic", "image/png", b"x", "application/json", b"[1]")
    capture.close()
    assert (capture.stats()["failed_writes"], capture.stats()["failed"], capture.stats()["written"]) == (1, 1, 0)
    log = Path(capture.logs.path("ep")).read_text()
    assert "data capture: 1 records not written to s3://capture/data/ep/AllTraffic/" in log


def _sagemaker_line(record: dict[str, Any], sent: tuple[str, bytes, str, bytes], header: dict[str, Any]) -> str:
    """The record as ``json.dumps`` writes SageMaker's dict, from what was sent and the record's own id and time."""

    def payload(content_type: str, data: bytes, mode: str) -> dict[str, str]:
        media = content_type.split(";", 1)[0].strip().lower()
        kinds = {t: "JSON" for t in header["JsonContentTypes"]} | {t: "CSV" for t in header["CsvContentTypes"]}
        encoding = kinds.get(media, "BASE64")
        try:
            text = data.decode("utf-8") if encoding != "BASE64" else None
        except UnicodeDecodeError:
            text, encoding = None, "BASE64"
        if text is None:
            text = base64.b64encode(data).decode("ascii")
        return {"observedContentType": content_type, "mode": mode, "data": text, "encoding": encoding}

    meta = record["eventMetadata"]
    assert str(uuid.UUID(meta["eventId"])) == meta["eventId"] and uuid.UUID(meta["eventId"]).version == 4
    expected = {
        "captureData": {"endpointInput": payload(*sent[:2], "INPUT"), "endpointOutput": payload(*sent[2:], "OUTPUT")},
        "eventMetadata": {"eventId": meta["eventId"], "inferenceTime": meta["inferenceTime"]},
        "eventVersion": "0",
    }
    return json.dumps(expected)


def test_lines_are_byte_for_byte_what_json_dumps_writes(capture: DataCapture, settings: Settings) -> None:
    header = {"JsonContentTypes": ["application/json"], "CsvContentTypes": ["text/csv"]}
    capture.configs.put("endpoint", "ep", parse_config(config(CaptureContentTypeHeader=header)))
    sent = [
        ("image/png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "application/json", b"[0.25, 0.75]"),
        (
            "application/json; charset=utf-8",
            '{"name": "Zo\u00eb \u2603", "q": "a\\"b\\n"}'.encode(),
            "text/csv",
            b"1,2\n",
        ),
        ("application/json", b"\xff\xfe not utf-8", "application/json", b""),  # JSON type, not text: BASE64
        ('text/plain; x="y"', b"\t\x00", "TEXT/CSV", "caf\u00e9,\u00b5".encode()),  # quotes, controls, case
    ]
    before = time.time()
    for body in sent:
        capture.offer("ep", "AllTraffic", *body)
    capture.close()
    (path,) = (settings.buckets_dir / "capture" / "data" / "ep" / "AllTraffic").rglob("*.jsonl")
    text = path.read_text()
    assert text.endswith("\n") and text.isascii()
    lines = text.splitlines()
    assert len(lines) == len(sent)
    for line, body in zip(lines, sent, strict=True):
        record = json.loads(line)
        assert line == _sagemaker_line(record, body, header)
        stamp = datetime.strptime(record["eventMetadata"]["inferenceTime"], "%Y-%m-%dT%H:%M:%SZ")
        assert int(before) <= stamp.replace(tzinfo=UTC).timestamp() <= time.time()


def test_records_are_written_every_interval_while_serving_and_the_rest_on_close(
    capture: DataCapture, settings: Settings
) -> None:
    capture.configs.put("endpoint", "ep", parse_config(config()))
    for i in range(3):
        capture.offer("ep", "AllTraffic", "image/png", bytes([i]), "application/json", b"[1]")
    deadline = time.monotonic() + 10
    while len(records(settings, "ep")) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(records(settings, "ep")) == 3 and capture._thread is not None  # written before any close
    assert capture.stats()["written"] == 3
    capture.flush_every_s = 3600.0  # from now on only close() writes
    for i in range(4):
        capture.offer("ep", "AllTraffic", "image/png", bytes([10 + i]), "application/json", b"[1]")
    time.sleep(0.5)
    assert len(records(settings, "ep")) == 3
    capture.close()
    got = records(settings, "ep")
    assert sorted(decode(r["captureData"]["endpointInput"]) for _, r in got) == [
        bytes([i]) for i in (0, 1, 2, 10, 11, 12, 13)
    ]
    assert (capture.stats()["written"], capture.stats()["files"]) == (7, 2)


def test_a_burst_larger_than_a_file_is_written_whole_in_several_files(settings: Settings) -> None:
    db = Database(settings).create_all()
    capture = DataCapture(CaptureConfigs(db), Storage(settings), EndpointLogs(settings), flush_records=1000)
    capture.configs.put("endpoint", "ep", parse_config(config(mode="Input")))
    capture._start = lambda: None  # type: ignore[method-assign]  # queue the whole burst first
    for i in range(2500):
        capture.offer("ep", "AllTraffic", "image/png", i.to_bytes(2, "big"), "application/json", b"[1]")
    del capture._start
    capture._start()
    capture.close()
    got = records(settings, "ep")
    assert sorted(int.from_bytes(decode(r["captureData"]["endpointInput"]), "big") for _, r in got) == list(range(2500))
    assert len({r["eventMetadata"]["eventId"] for _, r in got}) == 2500
    assert len({path for path, _ in got}) == 3 and capture.stats()["files"] == 3


def test_a_record_that_cannot_be_encoded_is_counted_and_the_rest_of_its_batch_written(
    capture: DataCapture, settings: Settings
) -> None:
    capture.configs.put("endpoint", "ep", parse_config(config()))
    capture._start = lambda: None  # type: ignore[method-assign]  # one batch: the bad record among good ones
    capture.offer("ep", "AllTraffic", "image/png", b"a", "application/json", b"[1]")
    capture.offer("ep", "AllTraffic", "image/png", "text, not bytes", "application/json", b"[1]")  # type: ignore[arg-type]
    capture.offer("ep", "AllTraffic", "image/png", b"c", "application/json", b"[1]")
    del capture._start
    capture._start()
    capture.close()
    assert sorted(decode(r["captureData"]["endpointInput"]) for _, r in records(settings, "ep")) == [b"a", b"c"]
    assert (capture.stats()["captured"], capture.stats()["written"], capture.stats()["failed"]) == (3, 2, 1)
