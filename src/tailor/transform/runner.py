"""Runs one transform job: model workers through the backend, invocations over the wire protocol, atomic outputs.

The offline path is the online path: each ``TransformResources.InstanceCount`` instance is the endpoint's model
worker (``tailor.serving.worker``: the one ``load_model``, ``preprocess.decode_image``, the dynamic ``Batcher``),
started through the same ``Backend`` seam as an endpoint instance, and this runner sends it invocations as the
router does (``wire.WorkerConnection``). ``MultiRecord`` packs up to ``MULTI_RECORD_MAX`` records (within
``MaxPayloadInMB``) into one JSON Lines invocation, across input objects when each holds one image, so the
worker runs full batches; ``SingleRecord`` sends one image per invocation and the worker's batcher groups the
``MaxConcurrentTransforms`` in flight.

Outputs: an input object's ``.out`` is written once all its records are answered. The files one invocation
completes go as one ``Storage.write_many`` on a writer thread while the next invocations run (each file written
and fsynced to a temp name, then renamed into place; or one S3 PUT each), so a stopped or failed job leaves
whole files or none, and ``ObjectsDone`` counts the files written. Inputs are read a group ahead of the
invocations (``Storage.read_many``).

A bad record (the worker answers 4xx/424: not an image, too large) fails that record; a multi-record
invocation that fails is retried record by record so only the bad ones count. As SageMaker does (its
"Troubleshoot batch transform" page), the job goes on with the other input objects, writes no output for an
object with a failed record, and ends ``Failed`` with the count and the first failure in ``FailureReason``.
A worker that dies or stops answering fails the job.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tailor.backends import Backend, Handle
from tailor.data.recordio import RecordReader, unpack
from tailor.db import Database, utcnow
from tailor.errors import DataError, TailorError
from tailor.serving import wire
from tailor.serving.loader import usable_cores
from tailor.settings import Settings
from tailor.storage import Storage
from tailor.transform.inputs import InputObject, class_of, list_inputs, output_uri
from tailor.transform.spec import MULTI_RECORD_MAX, RECORDIO
from tailor.transform.store import TransformJobRow

log = logging.getLogger("tailor.transform")
FLUSH_S = 0.5  # progress reaches the database (Describe, the console) about twice a second
TRANSIENT = (429, 503)  # queue full / deadline passed in the worker: retried
MAX_TRANSIENT_RETRIES = 5
READ_AHEAD = 256  # input objects per read; the next group is read while this one is invoked
# The .out files an invocation completes are written as one group (``Storage.write_many``: each file atomic, the
# group's fsyncs sharing journal commits) on a writer thread, off the invocation's concurrency slot, so the next
# invocation goes out while the group is synced. Creating a file costs ~1 ms of kernel CPU on the 2-core VM's
# ext4, as much as ONNX Runtime spends on an image: two writers overlap one group's fsync wait with the next.
WRITERS = 2
WRITES_AHEAD = 8  # groups queued for the writers at most (then invocations wait: memory stays bounded)


class JobFailed(Exception):
    """The job cannot go on (a worker died, inputs vanished); the message becomes FailureReason."""


@dataclass
class _File:
    obj: InputObject
    records: int
    outputs: list[str | None]
    left: int
    failed: bool = False


@dataclass
class _Tally:
    done: int = 0
    failed: int = 0
    files_done: int = 0
    first_failure: str | None = None
    failed_files: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    confusion: dict[tuple[str, str], int] = field(default_factory=dict)


class TransformRunner:
    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        storage: Storage,
        backend: Backend,
        spec: dict[str, Any],
        model_dir: Path,
        class_names: list[str],
        stop_event: threading.Event,
        on_done: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.db = db
        self.storage = storage
        self.backend = backend
        self.spec = spec
        self.name = spec["TransformJobName"]
        self.model_dir = model_dir
        self.class_names = class_names
        self.stop_event = stop_event
        self.on_done = on_done
        self.tally = _Tally()
        self.work_dir = settings.home / "transform-jobs" / self.name
        self._instances: list[tuple[str, str, Handle]] = []
        self._written = threading.Lock()
        self._writers = ThreadPoolExecutor(WRITERS, thread_name_prefix=f"transform-write-{self.name[:20]}")
        self._writes: set[asyncio.Future[None]] = set()
        self._write_room = asyncio.Semaphore(WRITES_AHEAD)
        self._failure: list[BaseException] = []  # from an invocation or a write: the job cannot go on

    # -- lifecycle -----------------------------------------------------------------------------------
    def run(self) -> None:
        status, reason = "Failed", None
        try:
            self._update(start_time=utcnow())
            objects = list_inputs(self.storage, self.spec)
            status, reason = self._run(objects)
        except (JobFailed, TailorError) as err:
            reason = f"ClientError: {err}" if isinstance(err, TailorError) and err.http_status < 500 else str(err)
        except Exception as exc:  # noqa: BLE001 - a job always ends with a status and a reason
            log.exception("transform job %s crashed", self.name)
            reason = f"InternalFailure: {type(exc).__name__}: {exc}"
        finally:
            self._stop_instances()
            shutil.rmtree(self.work_dir / "inputs", ignore_errors=True)  # copies of remote .rec files
            if self.stop_event.is_set():  # whatever the stop interrupted: the job ends as asked
                status, reason = "Stopped", None
            self._finish(status, reason)
            self.on_done(self.name)

    def _run(self, objects: list[InputObject]) -> tuple[str, str | None]:
        files = self._count(objects)
        self._update(records_total=sum(f.records for f in files), files_total=len(files))
        self._start_instances()
        asyncio.run(self._transform(files))
        if self.stop_event.is_set():
            return "Stopped", None
        t = self.tally
        if t.failed:
            return "Failed", (
                f"ClientError: {t.failed} of {t.failed + t.done} records failed, so {t.failed_files} input "
                f"object(s) have no output; first failure: {t.first_failure}"
            )
        return "Completed", None

    def _count(self, objects: list[InputObject]) -> list[_File]:
        """Records per input object: one per image; a .rec's records (read from its local file)."""
        if self.spec["TransformInput"]["ContentType"] != RECORDIO:
            return [_File(o, 1, [None], 1) for o in objects]
        out = []
        for o in objects:
            try:
                with RecordReader(self._local(o)) as reader:
                    n = len(reader.offsets())
            except DataError:
                n = 1  # an unreadable .rec counts as one failed record when it is read
            out.append(_File(o, n, [None] * n, n))
        return out

    def _local(self, obj: InputObject) -> Path:
        path = self.storage.local_path(obj.uri)
        if path is None:  # a remote S3 object: read it from a copy in the job's work dir
            path = self.work_dir / "inputs" / obj.rel
            if not path.is_file():
                self.storage.download_file(obj.uri, path)
        return path

    # -- model workers (the endpoint's, through the backend) ------------------------------------------
    def _start_instances(self) -> None:
        count = self.spec["TransformResources"]["InstanceCount"]
        options = {
            "max_batch_size": MULTI_RECORD_MAX,
            "max_delay_ms": 0,
            "max_image_pixels": self.settings.max_image_pixels,
            # the cores shared out between the instances: ONNX Runtime batch 64 gains ~1.7x from a second thread
            "threads": max(1, usable_cores() // count),
        }
        for i in range(count):
            wid = f"tx{uuid.uuid4().hex[:14]}"
            address = self.backend.instance_address(wid)
            log_path = self.work_dir / f"worker-{i}.log"
            handle = self.backend.start_instance(wid, str(self.model_dir), address, log_path, options)
            self._instances.append((wid, address, handle))
        for i, (wid, address, _) in enumerate(self._instances):
            try:
                self.backend.wait_ready(wid, address, self.work_dir / f"worker-{i}.log")
            except TailorError as err:
                raise JobFailed(f"AlgorithmError: the model worker did not start: {err}") from None

    def _stop_instances(self) -> None:
        for wid, address, handle in self._instances:
            with contextlib.suppress(Exception):
                self.backend.stop_instance(wid, handle)
            Path(address).unlink(missing_ok=True)
        self._instances = []

    # -- the invocations ------------------------------------------------------------------------------
    async def _transform(self, files: list[_File]) -> None:
        conns = [wire.WorkerConnection(address) for _, address, _ in self._instances]
        slots = asyncio.Semaphore(len(conns) * self.spec["MaxConcurrentTransforms"])
        tasks: set[asyncio.Task[None]] = set()
        failure = self._failure
        flusher = asyncio.get_running_loop().create_task(self._flush_loop())

        def done(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            slots.release()
            if not task.cancelled() and task.exception() is not None:
                failure.append(task.exception())  # type: ignore[arg-type]

        try:
            async for chunk in self._chunks(files):
                await slots.acquire()
                if failure or self.stop_event.is_set():
                    slots.release()
                    break
                task = asyncio.get_running_loop().create_task(self._invoke(conns, chunk))
                tasks.add(task)
                task.add_done_callback(done)
            while (tasks or self._writes) and not failure and not self.stop_event.is_set():
                await asyncio.wait(tasks | self._writes, timeout=0.1)
        finally:
            for task in list(tasks):
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            for conn in conns:
                await conn.close()
            await asyncio.to_thread(self._writers.shutdown, wait=True)  # writes under way finish: whole files
            await asyncio.to_thread(self._flush, self._snapshot())
        if failure:
            err = failure[0]
            raise JobFailed(str(err) if isinstance(err, JobFailed) else f"InternalFailure: {err}")

    async def _chunks(self, files: list[_File]):  # noqa: ANN202 - an async generator of record lists
        """(file, record index, bytes) lists, one per invocation, in input order; objects read in groups."""
        single = self.spec["BatchStrategy"] == "SingleRecord"
        budget = self.spec["MaxPayloadInMB"] * 1024 * 1024
        chunk: list[tuple[_File, int, bytes]] = []
        size = 0
        groups = [files[start : start + READ_AHEAD] for start in range(0, len(files), READ_AHEAD)]
        reading = asyncio.ensure_future(asyncio.to_thread(self._read_group, groups[0])) if groups else None
        for n, group in enumerate(groups):
            assert reading is not None
            loaded = await reading
            if n + 1 < len(groups):  # the next group is read while this one's records are invoked
                reading = asyncio.ensure_future(asyncio.to_thread(self._read_group, groups[n + 1]))
            for f, records in zip(group, loaded, strict=True):
                if isinstance(records, str):
                    self._fail_file(f, records)
                    continue
                for i, data in enumerate(records):
                    encoded = len(data) * 4 // 3 + 16  # base64 in a JSON line
                    if chunk and (single or len(chunk) >= MULTI_RECORD_MAX or size + encoded > budget):
                        yield chunk
                        chunk, size = [], 0
                    chunk.append((f, i, data))
                    size += encoded
        if chunk:
            yield chunk

    def _read_group(self, group: list[_File]) -> list[list[bytes] | str]:
        if self.stop_event.is_set():
            return [[] for _ in group]
        if not self._recordio:  # one image per object: one read_many for the group (a folder resolved once)
            return [[data] for data in self.storage.read_many([f.obj.uri for f in group])]
        out: list[list[bytes] | str] = []
        for f in group:
            if self.stop_event.is_set():
                out.append([])
                continue
            try:
                out.append(self._records(f))
            except DataError as err:
                out.append(f"{f.obj.uri}: {err}")
        return out

    def _records(self, f: _File) -> list[bytes]:
        with RecordReader(self._local(f.obj)) as reader:
            return [unpack(rec, path=f.obj.uri)[1] for rec in reader]

    async def _invoke(self, conns: list[wire.WorkerConnection], chunk: list[tuple[_File, int, bytes]]) -> None:
        status, body = await self._call(conns, chunk)
        if status == 200:
            lines = body.decode().splitlines()
            if len(lines) != len(chunk):
                raise JobFailed(
                    f"InternalFailure: the model worker answered {len(lines)} lines for {len(chunk)} records"
                )
            complete = [f for (f, i, _), line in zip(chunk, lines, strict=True) if self._answer(f, i, line)]
            if complete:
                await self._write_later(complete)
        elif len(chunk) > 1:  # find the bad record(s): one invocation each
            for item in chunk:
                await self._invoke(conns, [item])
        else:
            f, i, _ = chunk[0]
            try:
                message = json.loads(body).get("message", "")
            except ValueError:
                message = body[:200].decode(errors="replace")
            where = f.obj.uri + (f" record {i}" if self._recordio else "")
            self._fail_file(f, f"{where}: {message}", records=1)

    @property
    def _recordio(self) -> bool:
        return self.spec["TransformInput"]["ContentType"] == RECORDIO

    async def _call(
        self, conns: list[wire.WorkerConnection], chunk: list[tuple[_File, int, bytes]]
    ) -> tuple[int, bytes]:
        """One invocation: a lone record as image bytes, several as JSON Lines; transient refusals retried."""
        if len(chunk) == 1:
            ctype, body = "application/x-image", chunk[0][2]
        else:
            ctype = "application/jsonlines"
            body = b"".join(b'{"b64":"' + base64.b64encode(data) + b'"}\n' for _, _, data in chunk)
        timeout = self.spec["ModelClientConfig"]["InvocationsTimeoutInSeconds"]
        retries = MAX_TRANSIENT_RETRIES + self.spec["ModelClientConfig"]["InvocationsMaxRetries"]
        for attempt in range(retries + 1):
            conn = min(conns, key=lambda c: c.outstanding)
            try:
                reply = await asyncio.wait_for(
                    conn.request(wire.OP_INVOKE, ctype, "application/jsonlines", body), timeout
                )
            except wire.WorkerGone as err:
                raise JobFailed(f"AlgorithmError: the model worker stopped answering: {err}") from None
            except TimeoutError:
                raise JobFailed(
                    f"AlgorithmError: an invocation took over {timeout} s "
                    "(ModelClientConfig.InvocationsTimeoutInSeconds)"
                ) from None
            if reply.status not in TRANSIENT or attempt == retries:
                return reply.status, reply.body
            await asyncio.sleep(min(2.0, 0.05 * 2**attempt))
        raise AssertionError("unreachable")

    def _answer(self, f: _File, i: int, line: str) -> bool:
        """Record one answer; True when it completes its file (whose output is then due)."""
        probs = json.loads(line)["prediction"]
        f.outputs[i] = line if self.spec["TransformOutput"]["Accept"] == "application/jsonlines" else json.dumps(probs)
        best = max(range(len(probs)), key=probs.__getitem__)
        predicted = self.class_names[best] if best < len(self.class_names) else str(best)
        t = self.tally
        t.done += 1
        t.counts[predicted] = t.counts.get(predicted, 0) + 1
        truth = class_of(f.obj, self.class_names)
        if truth is not None:
            t.confusion[(truth, predicted)] = t.confusion.get((truth, predicted), 0) + 1
        f.left -= 1
        return f.left == 0 and not f.failed

    async def _write_later(self, files: list[_File]) -> None:
        """Queue one group write; the caller waits only while ``WRITES_AHEAD`` groups are already queued."""
        await self._write_room.acquire()
        future = asyncio.get_running_loop().run_in_executor(self._writers, self._write, files)
        self._writes.add(future)

        def written(fut: asyncio.Future[None]) -> None:
            self._writes.discard(fut)
            self._write_room.release()
            if not fut.cancelled() and fut.exception() is not None:
                self._failure.append(fut.exception())  # type: ignore[arg-type]

        future.add_done_callback(written)

    def _write(self, files: list[_File]) -> None:
        sep = "\n" if self.spec["TransformOutput"]["AssembleWith"] == "Line" else ""
        items = [
            (output_uri(self.spec, f.obj), "".join(o + sep for o in f.outputs if o is not None).encode()) for f in files
        ]
        self.storage.write_many(items)  # atomic per object: whole or absent
        with self._written:  # counted here: a write a stop interrupts still finishes (the pool is drained)
            self.tally.files_done += len(files)

    def _fail_file(self, f: _File, reason: str, records: int | None = None) -> None:
        n = f.left if records is None else records
        t = self.tally
        t.failed += n
        t.first_failure = t.first_failure or reason[:600]
        f.left -= n
        if not f.failed:
            f.failed = True
            t.failed_files += 1

    # -- progress and the end --------------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            if await asyncio.to_thread(self._flush, self._snapshot()):
                self.stop_event.set()

    def _snapshot(self) -> dict[str, Any]:
        """Progress and summary as of now, taken on the event loop (which alone changes the tally)."""
        t = self.tally
        return {
            "records_done": t.done,
            "records_failed": t.failed,
            "files_done": t.files_done,
            "summary": self._summary(),
        }

    def _flush(self, values: dict[str, Any]) -> bool:
        """Write progress and the summary so far; True when a stop was requested (from any process)."""
        with self.db.session() as s:
            row = s.get(TransformJobRow, self.name)
            if row is None:
                return True
            for k, v in values.items():
                setattr(row, k, v)
            row.last_modified_time = utcnow()
            return bool(row.stop_requested)

    def _summary(self) -> dict[str, Any]:
        t = self.tally
        out: dict[str, Any] = {"PredictedCounts": dict(sorted(t.counts.items()))}
        labelled = sum(t.confusion.values())
        if labelled:
            names = sorted({a for a, _ in t.confusion} | {b for _, b in t.confusion}, key=self._order)
            out["Labelled"] = labelled
            out["Correct"] = sum(n for (a, b), n in t.confusion.items() if a == b)
            out["Accuracy"] = out["Correct"] / labelled
            out["ConfusionClasses"] = names
            out["ConfusionMatrix"] = [[t.confusion.get((a, b), 0) for b in names] for a in names]
        return out

    def _order(self, name: str) -> tuple[int, str]:
        return (self.class_names.index(name) if name in self.class_names else len(self.class_names), name)

    def _public(self, reason: str) -> str:
        """FailureReason is shown to callers: the model's name and $TAILOR_HOME, never the server's paths."""
        reason = reason.replace(str(self.model_dir), f"model {self.spec['ModelName']!r}")
        return reason.replace(str(self.settings.home), "$TAILOR_HOME")

    def _update(self, **values: Any) -> None:
        with self.db.session() as s:
            row = s.get(TransformJobRow, self.name)
            if row is not None:
                for k, v in values.items():
                    setattr(row, k, v)
                row.last_modified_time = utcnow()

    def _finish(self, status: str, reason: str | None) -> None:
        with contextlib.suppress(Exception):
            self._flush(self._snapshot())
        with self.db.session() as s:
            row = s.get(TransformJobRow, self.name)
            if row is None:
                return
            row.status = status
            row.failure_reason = self._public(reason)[:1024] if status == "Failed" and reason else None
            row.end_time = utcnow()
            row.last_modified_time = row.end_time
        log.info("transform job %s %s%s (pid %d)", self.name, status, f": {reason}" if reason else "", os.getpid())


__all__ = ["TransformRunner"]
