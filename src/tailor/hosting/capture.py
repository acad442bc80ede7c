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
waits). One writer thread drains it every ``POLL_S``, encodes the records in batches
(``tailor.hosting.capture_records``) and writes a file per endpoint, variant and hour every ``FLUSH_EVERY_S``
(2 s) or ``FLUSH_RECORDS`` (2,000) records, whichever comes first, and on close. Records still queued when the
process is killed are lost (at most ~2 s of traffic). The writer also refreshes the endpoints' configs every
``REFRESH_S`` so the hot path never reads the database after an endpoint's first call.

The writer runs in the server's process: its CPU comes out of the model workers' share on a saturated machine,
and while it holds the GIL the event loop waits. Both are kept small: ~5 us of encoding per record against ~44
us for ``json.dumps`` of a dict with ``uuid4()`` and ``strftime`` each, files of up to 2,000 records (an
fsync'd file costs ~1.5 ms however small), 5 wake-ups a second, and at most ``CHUNK`` records encoded per GIL
hold. Measured in ``bench/bench_capture.py``: the writer's CPU per record went from 56 us (quiet machine) /
78-125 us (load 1-4) to 8-10 us in a burst and 12-17 us under steady traffic (load 4).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete

from tailor.db import Database
from tailor.errors import TailorError, ValidationError
from tailor.hosting.capture_records import Encoder, Key, file_name
from tailor.hosting.logs import EndpointLogs
from tailor.hosting.store import DataCaptureRow
from tailor.storage import Storage, join_uri, parse_uri

QUEUE_MAX = 10_000
FLUSH_EVERY_S = 2.0
FLUSH_RECORDS = 2000  # ~3 s at the ~700 req/s one worker serves: the 2 s interval usually comes first
REFRESH_S = 1.0
# The writer drains the queue this often. A wake-up costs the thread ~40-100 us of CPU on a 2-core VM (timer,
# context switch), so at 5 a second it stays ~0.5 us per record at ~700 records/s (20 a second was ~3 us).
POLL_S = 0.2
CHUNK = 64  # records encoded per GIL hold: ~5 us each, so the event loop waits behind at most ~0.3 ms
YIELD_S = 0.0002  # the pause between chunks when a backlog is drained
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
    _encoder: Encoder = field(default_factory=Encoder, init=False)

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
        # file key -> (when its first record was drained, that record's time, lines)
        buffers: dict[Key, tuple[float, float, list[bytes]]] = {}
        refreshed = time.monotonic()
        cpu0 = time.thread_time() - self.counters.writer_cpu_s  # the clock is per thread: carry a restart's
        while True:
            self.counters.writer_cpu_s = time.thread_time() - cpu0
            stopping = self._stop.is_set()  # read before draining: what was queued before close() is written
            now = time.monotonic()
            while self._queue:
                chunk = [self._queue.popleft() for _ in range(min(len(self._queue), CHUNK))]
                for key, t, line in self._encode(chunk):
                    _, first, lines = buffers.setdefault(key, (now, t, []))
                    lines.append(line)
                    if len(lines) >= self.flush_records:
                        del buffers[key]
                        self._write(key, first, lines)
                if self._queue:
                    # A backlog: hand the GIL to the event loop between chunks, not after every record (a sleep
                    # costs this thread ~10-40 us of CPU on a 2-core VM, as much as two records' encoding).
                    time.sleep(YIELD_S)
            due = [
                k
                for k, (t0, _, lines) in buffers.items()
                if stopping or len(lines) >= self.flush_records or now - t0 >= self.flush_every_s
            ]
            for key in due:
                _, first, lines = buffers.pop(key)
                self._write(key, first, lines)
            if stopping:
                self.counters.writer_cpu_s = time.thread_time() - cpu0
                return
            if now - refreshed >= REFRESH_S:
                self._refresh()
                refreshed = now
            self._stop.wait(POLL_S)

    def _encode(self, chunk: list[Any]) -> list[tuple[Key, float, bytes]]:
        try:
            return self._encoder.encode(chunk, len(chunk))
        except Exception:  # noqa: BLE001 - one bad record must neither stop the writer nor lose its chunk
            out = []
            for item in chunk:
                try:
                    out += self._encoder.encode([item], 1)
                except Exception:  # noqa: BLE001
                    log.exception("data capture: a record of %s could not be encoded", item[1])
                    self.counters.failed += 1
            return out

    def _refresh(self) -> None:
        for endpoint in list(self._plans):
            try:
                self._plans[endpoint] = Plan.of(self.configs.get("endpoint", endpoint))
            except Exception:  # noqa: BLE001 - a locked database: keep the plan, try again next time
                log.warning("data capture: cannot refresh %s's settings", endpoint, exc_info=True)

    def _write(self, key: Key, first: float, lines: list[bytes]) -> None:
        destination, endpoint, variant, hour = key
        uri = join_uri(destination, endpoint, variant, hour, file_name(first))
        try:
            self.storage.write_bytes(uri, b"".join(lines))
            self.counters.files += 1
            self.counters.written += len(lines)
        except (TailorError, OSError) as err:
            self.counters.failed_writes += 1
            self.counters.failed += len(lines)
            self.logs.event(endpoint, f"data capture: {len(lines)} records not written to {uri}: {err}")
