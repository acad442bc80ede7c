"""The endpoint runtime log file: lines, rotation with logical offsets, workers' output, secrets, rate limit."""

from __future__ import annotations

import pytest

from tailor.hosting import logs as logs_module
from tailor.hosting.logs import EndpointLogs
from tailor.settings import Settings


@pytest.fixture
def logs(settings: Settings) -> EndpointLogs:
    return EndpointLogs(settings)


def read_all(logs: EndpointLogs, name: str, offset: int = 0) -> tuple[str, int]:
    out = []
    while True:
        chunk = logs.read(name, offset)
        if not chunk["Text"]:
            return "".join(out), offset
        out.append(chunk["Text"])
        offset = chunk["NextOffset"]


def test_events_are_timestamped_lines_read_by_offset(logs: EndpointLogs) -> None:
    logs.event("ep", "endpoint InService")
    text, pos = read_all(logs, "ep")
    assert text.endswith(" tailor: endpoint InService\n") and text[:4].isdigit() and "T" in text[:11]
    logs.event("ep", "second")
    more, _ = read_all(logs, "ep", pos)
    assert more.endswith("tailor: second\n") and "InService" not in more


def test_rotation_keeps_offsets_and_bounds_the_size(logs: EndpointLogs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs_module, "MAX_SEGMENT_BYTES", 1000)
    for i in range(60):  # ~60 x 45 bytes: several rotations
        logs.event("ep", f"line {i:03d}")
    files = sorted(p.name for p in logs.directory("ep").iterdir() if p.name.startswith("endpoint.log"))
    assert files == ["endpoint.log", "endpoint.log.1"]
    assert all((logs.directory("ep") / f).stat().st_size <= 1000 for f in files)
    text, end = read_all(logs, "ep")
    assert text.startswith("[") and "rotated away]" in text.splitlines()[0]  # the oldest lines are gone, said so
    kept = [int(line.rsplit(" ", 1)[1]) for line in text.splitlines()[1:]]
    assert kept == list(range(kept[0], 60))  # what is kept is contiguous and ends at the last line
    # A reader that had everything so far resumes exactly after a rotation.
    logs.event("ep", "after")
    assert read_all(logs, "ep", end)[0].endswith("tailor: after\n")


def test_worker_output_is_collected_once_and_truncated_past_its_cap(
    logs: EndpointLogs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs_module, "MAX_WORKER_BYTES", 64)
    w = logs.worker_path("ep", "abcdef0123456789")
    w.parent.mkdir(parents=True)
    w.write_text("tailor worker 7 ready: model loaded in 0.40 s\npartial")
    logs.collect("ep", ["abcdef0123456789"])
    logs.collect("ep", ["abcdef0123456789"])  # twice: nothing is copied twice
    text, _ = read_all(logs, "ep")
    assert text.count("worker abcdef01: tailor worker 7 ready: model loaded in 0.40 s\n") == 1
    assert "partial" not in text  # a line without its end waits
    with w.open("a") as fh:
        fh.write(" line\n" + "x" * 80 + "\n")
    logs.collect("ep", ["abcdef0123456789"])
    text, _ = read_all(logs, "ep")
    assert "worker abcdef01: partial line\n" in text and w.stat().st_size == 0  # copied, then truncated


def test_secrets_and_the_home_path_are_masked(logs: EndpointLogs, settings: Settings) -> None:
    logs.event("ep", f"failed reading {settings.home}/models/x: Authorization: Bearer abc.def-123")
    logs.event("ep", "AWS4-HMAC-SHA256 Credential=AKIA123/20261130/us-east-1, Signature=0a1b2c secret_key=s3cr3t")
    text, _ = read_all(logs, "ep")
    assert "$TAILOR_HOME/models/x" in text and str(settings.home) not in text
    for secret in ("abc.def-123", "AKIA123", "0a1b2c", "s3cr3t"):
        assert secret not in text


def test_failed_invocations_are_rate_limited_and_counted(logs: EndpointLogs, monkeypatch: pytest.MonkeyPatch) -> None:
    logs.event("ep", "endpoint InService")
    now = [1_800_000_000.0]
    monkeypatch.setattr(logs_module.time, "time", lambda: now[0])
    for i in range(logs_module.ERRORS_PER_S + 15):
        logs.invocation_error("ep", f"req-{i}", 424, "ModelError", "boom", "AllTraffic")
    now[0] += 1
    logs.invocation_error("ep", "req-next", 503, "ServiceUnavailable", "no worker")
    logs.invocation_error("never-created", "req-x", 503, "ServiceUnavailable", "no")  # no directory is made
    text, _ = read_all(logs, "ep")
    logged = [line for line in text.splitlines() if "invocation req-" in line]
    assert len(logged) == logs_module.ERRORS_PER_S + 1
    assert logged[0].endswith("invocation req-0 failed on variant AllTraffic: 424 ModelError: boom")
    assert "tailor: 15 more failed invocations not logged (rate limit)" in text
    assert logged[-1].endswith("invocation req-next failed: 503 ServiceUnavailable: no worker")
    assert not logs.directory("never-created").exists()


def test_a_name_that_is_not_an_endpoint_name_never_reaches_the_disk(logs: EndpointLogs) -> None:
    from tailor.errors import ValidationError

    for bad in ("..", "a/b", ""):
        with pytest.raises(ValidationError, match="EndpointName"):
            logs.read(bad)
