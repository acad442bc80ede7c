"""Data capture (SageMaker's ``DataCaptureConfig``): sampled invocation inputs and outputs as JSON Lines.

An endpoint config may carry ``DataCaptureConfig`` (botocore's shape: ``EnableCapture`` default true,
``InitialSamplingPercentage`` 0-100, ``DestinationS3Uri``, ``CaptureOptions`` [{``CaptureMode``: Input | Output |
InputAndOutput}], ``CaptureContentTypeHeader`` {``CsvContentTypes``, ``JsonContentTypes``}); an endpoint
snapshots its config's at create and update, and DescribeEndpoint shows it as ``DataCaptureConfig``
(``DataCaptureConfigSummary``: CaptureStatus Started/Stopped, CurrentSamplingPercentage).

Records are SageMaker's (one JSON object per line)::

    {"captureData": {"endpointInput": {"observedContentType": "image/png", "mode": "INPUT",
                                       "data": "iVBORw0…", "encoding": "BASE64"},
                     "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                        "data": "[0.01, …]", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceTime": "2026-11-30T09:41:07Z"},
     "eventVersion": "0"}

A body whose content type is listed in ``JsonContentTypes`` is kept as text with encoding JSON, in
``CsvContentTypes`` as CSV; any other (images) as BASE64, SageMaker's default. Files land where SageMaker puts
them: ``<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm>-<ss>-<ms>-<uuid>.jsonl`` (UTC hour of the
inference; the name from its first record), written through ``tailor.storage`` (atomic: a file appears
whole or not at all). Only answered invocations (2xx) are captured.

Off the request path: the invocation only draws the sample and appends a tuple to a bounded queue
(``QUEUE_MAX`` records; when full the record is dropped and counted in ``stats()["dropped"]``, the request never
waits). One writer thread drains it every ``POLL_S``, encodes the records and writes a file per endpoint,
variant and hour every ``FLUSH_EVERY_S`` (2 s) or ``FLUSH_RECORDS`` (500) records, whichever comes first, and
on close. Records still queued when the process is killed are lost (at most ~2 s of traffic). The writer also
refreshes the endpoints' configs every ``REFRESH_S`` so the hot path never reads the database after an
endpoint's first call. Costs are measured in ``bench/bench_capture.py``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete

from tailor.db import Database
from tailor.errors import TailorError, ValidationError
from tailor.hosting.logs import EndpointLogs
from tailor.hosting.store import DataCaptureRow
from tailor.storage import Storage, join_uri, parse_uri

QUEUE_MAX = 10_000
FLUSH_EVERY_S = 2.0
FLUSH_RECORDS = 500
REFRESH_S = 1.0
POLL_S = 0.05  # the writer drains the queue this often (20 wake-ups a second when idle)
MODES = ("Input", "Output", "InputAndOutput")
_TYPE_RE = r"[a-zA-Z0-9](-*[a-zA-Z0-9])*/[a-zA-Z0-9](-*[a-zA-Z0-9.])*"  # botocore's CsvContentType pattern
log = logging.getLogger("tailor.hosting.capture")


# -- the config: validated once, stored per endpoint config and per endpoint ----------------------------------
def parse_config(raw: Any) -> dict[str, Any]:
    """A CreateEndpointConfig ``DataCaptureConfig`` checked against botocore's shape; defaults filled in."""
    import re

    where = "DataCaptureConfig"
    if not isinstance(raw, dict):
        raise ValidationError(f"{where} must be an object")
    known = {
        "EnableCapture",
        "InitialSamplingPercentage",
        "DestinationS3Uri",
        "KmsKeyId",
        "CaptureOptions",
        "CaptureContentTypeHeader",
    }
    if unknown := sorted(set(raw) - known):
        raise ValidationError(f"{where} has unknown member(s) {unknown}")
    if raw.get("KmsKeyId"):
        raise ValidationError(f"{where}.KmsKeyId is not supported: Tailor does not encrypt captured data with KMS")
    enable = raw.get("EnableCapture", True)
    if not isinstance(enable, bool):
        raise ValidationError(f"{where}.EnableCapture must be true or false")
    pct = raw.get("InitialSamplingPercentage")
    if not isinstance(pct, int) or isinstance(pct, bool) or not 0 <= pct <= 100:
        raise ValidationError(f"{where}.InitialSamplingPercentage must be an integer 0..100, got {pct!r}")
    dest = raw.get("DestinationS3Uri")
    if not isinstance(dest, str) or not dest or len(dest) > 512:
        raise ValidationError(f"{where}.DestinationS3Uri must be an s3://bucket/prefix URI (at most 512 characters)")
    parse_uri(dest)
    options = raw.get("CaptureOptions")
    if not isinstance(options, list) or not 1 <= len(options) <= 32:
        raise ValidationError(f"{where}.CaptureOptions must list 1 to 32 {{CaptureMode: Input|Output|InputAndOutput}}")
    for i, o in enumerate(options):
        if not isinstance(o, dict) or set(o) != {"CaptureMode"} or o["CaptureMode"] not in MODES:
            raise ValidationError(f"{where}.CaptureOptions[{i}] must be {{'CaptureMode': one of {list(MODES)}}}")
    out: dict[str, Any] = {
        "EnableCapture": enable,
        "InitialSamplingPercentage": pct,
        "DestinationS3Uri": dest,
        "CaptureOptions": [{"CaptureMode": o["CaptureMode"]} for o in options],
    }
    header = raw.get("CaptureContentTypeHeader")
    if header is not None:
        if not isinstance(header, dict) or set(header) - {"CsvContentTypes", "JsonContentTypes"}:
            raise ValidationError(f"{where}.CaptureContentTypeHeader may hold CsvContentTypes and JsonContentTypes")
        for key, types in header.items():
            ok = isinstance(types, list) and 1 <= len(types) <= 10
            if not ok or not all(isinstance(t, str) and len(t) <= 256 and re.fullmatch(_TYPE_RE, t) for t in types):
                raise ValidationError(f"{where}.CaptureContentTypeHeader.{key} must list 1 to 10 media types")
        out["CaptureContentTypeHeader"] = {k: list(v) for k, v in header.items()}
    return out


def summary(config: dict[str, Any]) -> dict[str, Any]:
    """DescribeEndpoint's ``DataCaptureConfig`` (botocore's DataCaptureConfigSummary)."""
    return {
        "EnableCapture": config["EnableCapture"],
        "CaptureStatus": "Started" if config["EnableCapture"] else "Stopped",
        "CurrentSamplingPercentage": config["InitialSamplingPercentage"],
        "DestinationS3Uri": config["DestinationS3Uri"],
    }


class CaptureConfigs:
    """The stored configs: one per endpoint config, and the snapshot each endpoint serves with."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        with self.db.session() as s:
            row = s.get(DataCaptureRow, (kind, name))
            return dict(row.config) if row is not None else None

    def put(self, kind: str, name: str, config: dict[str, Any] | None) -> None:
        with self.db.session() as s:
            s.execute(delete(DataCaptureRow).where(DataCaptureRow.kind == kind, DataCaptureRow.name == name))
            if config is not None:
                s.add(DataCaptureRow(kind=kind, name=name, config=config))

    def snapshot(self, config_name: str, endpoint: str) -> None:
        """An endpoint takes its config's capture settings (create, update)."""
        self.put("endpoint", endpoint, self.get("endpoint-config", config_name))


# -- the runtime: sample on the request path, encode and write on a thread -------------------------------------
@dataclass(frozen=True)
class Plan:
    """An endpoint's capture settings as the hot path needs them."""

    percent: int
    destination: str
    inputs: bool
    outputs: bool
    csv: frozenset[str]
    json: frozenset[str]

    @classmethod
    def of(cls, config: dict[str, Any] | None) -> Plan | None:
        if not config or not config["EnableCapture"] or config["InitialSamplingPercentage"] <= 0:
            return None
        modes = {o["CaptureMode"] for o in config["CaptureOptions"]}
        header = config.get("CaptureContentTypeHeader") or {}
        return cls(
            config["InitialSamplingPercentage"],
            config["DestinationS3Uri"],
            bool(modes & {"Input", "InputAndOutput"}),
            bool(modes & {"Output", "InputAndOutput"}),
            frozenset(t.lower() for t in header.get("CsvContentTypes", [])),
            frozenset(t.lower() for t in header.get("JsonContentTypes", [])),
        )


@dataclass
class _Counters:
    captured: int = 0  # sampled and queued
    dropped: int = 0  # sampled, but the queue was full
    written: int = 0  # records in files written
    failed: int = 0  # records in writes that failed
    files: int = 0
    failed_writes: int = 0
    writer_cpu_s: float = 0.0  # the writer thread's own CPU time (encoding, writes, refreshes)


@dataclass(eq=False)
class DataCapture:
    configs: CaptureConfigs
    storage: Storage
    logs: EndpointLogs
    flush_every_s: float = FLUSH_EVERY_S
    flush_records: int = FLUSH_RECORDS
    queue_max: int = QUEUE_MAX
    counters: _Counters = field(default_factory=_Counters, init=False)
    _plans: dict[str, Plan | None] = field(default_factory=dict, init=False)
    # A deque, not queue.Queue: append and popleft are atomic under the GIL and cost ~0.1 us against ~1-3 us
    # (more under load) for Queue's lock and condition on every request.
    _queue: deque[tuple[Any, ...]] = field(default_factory=deque, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    # -- the request path -------------------------------------------------------------------------------------
    def plan(self, endpoint: str) -> Plan | None:
        try:
            return self._plans[endpoint]
        except KeyError:  # an endpoint's first invocation in this process: one database read
            plan = self._plans[endpoint] = Plan.of(self.configs.get("endpoint", endpoint))
            self._start()  # also refreshes plans: another process may turn capture on later
            return plan

    def offer(self, endpoint: str, variant: str, content_type: str, body: bytes, reply_type: str, reply: bytes) -> None:
        """Sample one answered invocation and queue it; never blocks (a full queue drops and counts)."""
        plan = self.plan(endpoint)
        if plan is None or (plan.percent < 100 and random.random() * 100 >= plan.percent):
            return
        if len(self._queue) >= self.queue_max:
            self.counters.dropped += 1
            return
        self.counters.captured += 1
        self._queue.append((plan, endpoint, variant, time.time(), content_type, body, reply_type, reply))

    def invalidate(self, endpoint: str) -> None:
        """Forget an endpoint's plan (its capture settings changed in this process)."""
        self._plans.pop(endpoint, None)

    def stats(self) -> dict[str, int]:
        c = self.counters
        return {
            "captured": c.captured,
            "dropped": c.dropped,
            "written": c.written,
            "failed": c.failed,
            "files": c.files,
            "failed_writes": c.failed_writes,
        }

    # -- the writer -------------------------------------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tailor-data-capture", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Write everything queued, then stop the writer."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(30)
            self._stop.clear()

    def _run(self) -> None:
        # (destination, endpoint, variant, "yyyy/mm/dd/hh") -> (first record's time, its wall-clock, lines)
        buffers: dict[tuple[str, str, str, str], tuple[float, datetime, list[str]]] = {}
        refreshed = time.monotonic()
        cpu0 = time.thread_time() - self.counters.writer_cpu_s  # the clock is per thread: carry a restart's
        while True:
            self.counters.writer_cpu_s = time.thread_time() - cpu0
            stopping = self._stop.is_set()  # read before draining: what was queued before close() is written
            now = time.monotonic()
            while self._queue:
                # Hand the GIL back after each record (~20 us of encoding): otherwise the event loop waits up
                # to the interpreter's 5 ms switch interval behind a long drain, which shows in its p99.
                time.sleep(0)
                key, when, line = self._record(self._queue.popleft())
                _, first, lines = buffers.setdefault(key, (now, when, []))
                lines.append(line)
                if len(lines) >= self.flush_records:
                    del buffers[key]
                    self._write(key, first, lines)
            due = [
                k
                for k, (t0, _, lines) in buffers.items()
                if stopping or len(lines) >= self.flush_records or now - t0 >= self.flush_every_s
            ]
            for key in due:
                _, when, lines = buffers.pop(key)
                self._write(key, when, lines)
            if stopping:
                self.counters.writer_cpu_s = time.thread_time() - cpu0
                return
            if now - refreshed >= REFRESH_S:
                self._refresh()
                refreshed = now
            self._stop.wait(POLL_S)

    def _refresh(self) -> None:
        for endpoint in list(self._plans):
            try:
                self._plans[endpoint] = Plan.of(self.configs.get("endpoint", endpoint))
            except Exception:  # noqa: BLE001 - a locked database: keep the plan, try again next time
                log.warning("data capture: cannot refresh %s's settings", endpoint, exc_info=True)

    def _record(self, item: tuple[Any, ...]) -> tuple[tuple[str, str, str, str], datetime, str]:
        plan, endpoint, variant, t, content_type, body, reply_type, reply = item
        when = datetime.fromtimestamp(t, UTC)
        data: dict[str, Any] = {}
        if plan.inputs:
            data["endpointInput"] = _payload(plan, content_type, body, "INPUT")
        if plan.outputs:
            data["endpointOutput"] = _payload(plan, reply_type, reply, "OUTPUT")
        record = {
            "captureData": data,
            "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "eventVersion": "0",
        }
        return (plan.destination, endpoint, variant, f"{when:%Y/%m/%d/%H}"), when, json.dumps(record)

    def _write(self, key: tuple[str, str, str, str], when: datetime, lines: list[str]) -> None:
        destination, endpoint, variant, hour = key
        name = f"{when:%M-%S}-{when.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
        uri = join_uri(destination, endpoint, variant, hour, name)
        try:
            self.storage.write_bytes(uri, ("\n".join(lines) + "\n").encode())
            self.counters.files += 1
            self.counters.written += len(lines)
        except (TailorError, OSError) as err:
            self.counters.failed_writes += 1
            self.counters.failed += len(lines)
            self.logs.event(endpoint, f"data capture: {len(lines)} records not written to {uri}: {err}")


def _payload(plan: Plan, content_type: str, data: bytes, mode: str) -> dict[str, str]:
    media = content_type.split(";", 1)[0].strip().lower()
    encoding = "JSON" if media in plan.json else "CSV" if media in plan.csv else "BASE64"
    text = None
    if encoding != "BASE64":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "BASE64"
    if text is None:
        text = base64.b64encode(data).decode("ascii")
    return {"observedContentType": content_type, "mode": mode, "data": text, "encoding": encoding}


def decode(payload: dict[str, str]) -> bytes:
    """A captured body back as bytes (for readers and tests)."""
    if payload["encoding"] == "BASE64":
        try:
            return base64.b64decode(payload["data"], validate=True)
        except binascii.Error as err:
            raise ValidationError(f"captured data is not base64: {err}") from None
    return payload["data"].encode("utf-8")
