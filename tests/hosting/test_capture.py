"""Data capture without model workers: the config's validation, SageMaker's record format and file layout,
sampling, capture options, and a full queue that drops (counted) instead of blocking."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tailor.db import Database
from tailor.errors import ValidationError
from tailor.hosting.capture import CaptureConfigs, DataCapture, decode, parse_config
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
