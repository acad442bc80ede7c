"""Endpoint metrics: per endpoint, variant and minute in the database, as SageMaker's CloudWatch metrics.

The router counts invocations and latencies in memory (``tailor.serving.metrics.EndpointMetrics``); the
supervisor samples each worker's CPU and memory and its batcher counters; ``flush`` adds the deltas into
``hosting_endpoint_metrics`` (and the latency histogram and batch sizes into ``hosting_endpoint_metric_details``),
so every Tailor process that serves an endpoint adds to the same minutes and a restart loses at most one flush.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psutil
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from tailor.db import Database
from tailor.hosting.store import EndpointInputMismatchRow, EndpointMetricDetailRow, EndpointMetricRow, WorkerRow
from tailor.resources import as_datetime
from tailor.serving import wire
from tailor.serving.metrics import EndpointMetrics, merge_histogram, percentile


@dataclass(eq=False)
class MetricsStore:
    db: Database
    metrics: EndpointMetrics
    # worker id -> (pid, batches, images, mismatched inputs): the counters at the previous sample
    _batch_seen: dict[str, tuple[int | None, int, int, int]] = field(default_factory=dict, init=False)

    def flush(self) -> None:
        """Add this process's invocation and sample deltas into the per-minute rows.

        Several processes (servers, an in-process client) add to the same minutes, so counters are added in SQL
        (``SET n = n + :delta``), never read and written back: no addition is lost on either database. When
        two insert the same new minute at once, the loser retries its whole transaction and adds to the row.
        """
        deltas = self.metrics.drain()
        if not deltas:
            return
        for attempt in range(3):
            try:
                with self.db.session() as s:
                    self._add(s, deltas)
                return
            except IntegrityError:
                if attempt == 2:
                    raise

    def _add(self, s: Any, deltas: dict[tuple[str, str, datetime], Any]) -> None:
        greatest = func.greatest if s.get_bind().dialect.name == "postgresql" else func.max  # scalar max
        m = EndpointMetricRow
        for (endpoint, variant, minute), b in deltas.items():
            key = (endpoint, variant, minute)
            sums = {
                "invocations": b.invocations,
                "errors_4xx": b.errors_4xx,
                "errors_5xx": b.errors_5xx,
                "model_latency_us": b.model_latency_us,
                "overhead_latency_us": b.overhead_latency_us,
                "cpu_percent": b.cpu_percent,
                "memory_bytes": b.memory_bytes,
                "samples": b.samples,
            }
            values: dict[str, Any] = {k: getattr(m, k) + v for k, v in sums.items()}
            values["max_model_latency_us"] = greatest(m.max_model_latency_us, b.max_model_latency_us)
            values["instances"] = greatest(m.instances, b.instances)
            # The first write of the transaction: on SQLite it takes the write lock, so the details' read below
            # cannot interleave with another writer either (PostgreSQL locks that row instead).
            if not _update(s, m, key, values):
                s.add(
                    m(
                        endpoint_name=endpoint,
                        variant_name=variant,
                        minute=minute,
                        max_model_latency_us=b.max_model_latency_us,
                        instances=b.instances,
                        **sums,
                    )
                )
                s.flush()  # the INSERT now, so a concurrent one fails here (and is retried), not at commit
            if b.latency_histogram or b.batches:
                self._flush_details(s, key, b)
            if b.mismatched_inputs:
                mm = EndpointInputMismatchRow
                if not _update(s, mm, key, {"mismatched_inputs": mm.mismatched_inputs + b.mismatched_inputs}):
                    s.add(
                        mm(
                            endpoint_name=endpoint,
                            variant_name=variant,
                            minute=minute,
                            mismatched_inputs=b.mismatched_inputs,
                        )
                    )
                    s.flush()

    @staticmethod
    def _flush_details(s: Any, key: tuple[str, str, datetime], b: Any) -> None:
        row = s.get(EndpointMetricDetailRow, key, with_for_update=True)
        if row is None:
            row = EndpointMetricDetailRow(
                endpoint_name=key[0],
                variant_name=key[1],
                minute=key[2],
                latency_histogram={},
                batches=0,
                batched_images=0,
            )
            s.add(row)
            s.flush()
        hist = {int(k): int(v) for k, v in (row.latency_histogram or {}).items()}
        merge_histogram(hist, b.latency_histogram)
        row.latency_histogram = {str(k): v for k, v in sorted(hist.items())}  # a new dict: JSON change tracked
        row.batches += b.batches
        row.batched_images += b.batched_images

    def query(self, name: str, since: Any = None) -> dict[str, Any]:
        """Per variant and minute: Invocations, Invocation4XXErrors, Invocation5XXErrors, ModelLatency and
        OverheadLatency (mean µs), ModelLatencyP50/ModelLatencyP99 (µs, within 2.5 %), MaxModelLatency,
        BatchSize (mean realised batch, images), Batches and BatchedImages, InvocationsPerInstance,
        CPUUtilization (% of one core per worker) and MemoryUtilization (% of this machine's memory per worker).
        Latencies, percentiles and batch figures are None for a minute that has none (a minute can hold only the
        supervisor's CPU and memory samples: a mean latency of 0 there would claim requests that never came)."""
        self.sample_batches()
        self.flush()
        q = select(EndpointMetricRow).where(EndpointMetricRow.endpoint_name == name)
        dq = select(EndpointMetricDetailRow).where(EndpointMetricDetailRow.endpoint_name == name)
        mq = select(EndpointInputMismatchRow).where(EndpointInputMismatchRow.endpoint_name == name)
        if since is not None:
            q = q.where(EndpointMetricRow.minute >= as_datetime(since))
            dq = dq.where(EndpointMetricDetailRow.minute >= as_datetime(since))
            mq = mq.where(EndpointInputMismatchRow.minute >= as_datetime(since))
        with self.db.session() as s:
            rows = list(s.scalars(q.order_by(EndpointMetricRow.minute, EndpointMetricRow.variant_name)))
            details = {
                (d.variant_name, as_datetime(d.minute)): (
                    {int(k): int(v) for k, v in (d.latency_histogram or {}).items()},
                    d.batches,
                    d.batched_images,
                )
                for d in s.scalars(dq)
            }
            mismatched = {(m.variant_name, as_datetime(m.minute)): m.mismatched_inputs for m in s.scalars(mq)}
        total_mem = psutil.virtual_memory().total
        points = []
        for r in rows:
            n = max(r.invocations, 1)
            hist, batches, images = details.get((r.variant_name, as_datetime(r.minute)), ({}, 0, 0))
            points.append(
                {
                    "VariantName": r.variant_name,
                    "Timestamp": r.minute,
                    "Invocations": r.invocations,
                    "Invocation4XXErrors": r.errors_4xx,
                    "Invocation5XXErrors": r.errors_5xx,
                    "ModelLatency": r.model_latency_us / n if r.invocations else None,
                    "ModelLatencyP50": percentile(hist, 0.50),
                    "ModelLatencyP99": percentile(hist, 0.99),
                    "MaxModelLatency": r.max_model_latency_us,
                    "BatchSize": images / batches if batches else None,
                    "Batches": batches,
                    "BatchedImages": images,
                    "MismatchedInputs": mismatched.get((r.variant_name, as_datetime(r.minute)), 0),
                    "OverheadLatency": r.overhead_latency_us / n if r.invocations else None,
                    "InvocationsPerInstance": r.invocations / max(r.instances, 1),
                    "CPUUtilization": r.cpu_percent / r.samples if r.samples else None,
                    "MemoryUtilization": 100.0 * r.memory_bytes / r.samples / total_mem if r.samples else None,
                }
            )
        return {"EndpointName": name, "Metrics": points}

    def worker_stats(self) -> list[dict[str, Any]]:
        """Each ready worker's batcher counters (realised batch sizes etc.), labelled with endpoint and variant."""
        with self.db.session() as s:
            rows = list(s.scalars(select(WorkerRow).where(WorkerRow.state == "ready")))
        out = []
        for w in rows:
            st = wire.stats(w.socket_path)
            if st is not None:
                out.append({"EndpointName": w.endpoint_name, "VariantName": w.variant_name, "WorkerId": w.id, **st})
        return out

    def sample_workers(self) -> None:
        """CPU (% of one core) and RSS of every ready worker into this minute's metrics."""
        with self.db.session() as s:
            rows = list(s.scalars(select(WorkerRow).where(WorkerRow.state == "ready")))
        counts: dict[tuple[str, str], int] = {}
        for w in rows:
            counts[(w.endpoint_name, w.variant_name)] = counts.get((w.endpoint_name, w.variant_name), 0) + 1
        now = time.time()
        for w in rows:
            if w.pid is None:  # runs on another machine (a cluster's actor): no local process to sample
                continue
            try:
                p = psutil.Process(w.pid)
                cpu = p.cpu_percent(interval=None) if _seen(w.id) else _prime(p, w.id)
                mem = p.memory_info().rss
            except psutil.Error:
                continue
            self.metrics.sample(
                w.endpoint_name, w.variant_name, cpu, mem, counts[(w.endpoint_name, w.variant_name)], now
            )

    def sample_batches(self, rows: list[WorkerRow] | None = None) -> None:
        """Batches (and images in them) run by this process's workers since the last sample, into this minute.

        Only the owner samples a worker, so two processes reading the same workers never count a batch twice;
        a restarted worker (new pid) counts from zero.
        """
        if rows is None:
            with self.db.session() as s:
                q = select(WorkerRow).where(WorkerRow.state == "ready", WorkerRow.owner_pid == os.getpid())
                rows = list(s.scalars(q))
        now = time.time()
        for w in rows:
            st = wire.stats(w.socket_path)
            if st is None:
                continue
            pid, batches, images = st.get("pid"), int(st.get("batches", 0)), int(st.get("images", 0))
            mismatched = int(st.get("mismatched_inputs", 0))
            last_pid, last_batches, last_images, last_mismatched = self._batch_seen.get(w.id, (None, 0, 0, 0))
            if last_pid != pid or batches < last_batches:
                last_batches = last_images = last_mismatched = 0
            self._batch_seen[w.id] = (pid, batches, images, mismatched)
            if batches > last_batches or mismatched > last_mismatched:
                self.metrics.batches(
                    w.endpoint_name,
                    w.variant_name,
                    batches - last_batches,
                    images - last_images,
                    now,
                    mismatched - last_mismatched,
                )


def _update(s: Any, table: Any, key: tuple[str, str, datetime], values: dict[str, Any]) -> bool:
    """UPDATE one (endpoint, variant, minute) row with SQL expressions; False when there is no such row."""
    q = (
        update(table)
        .where(table.endpoint_name == key[0], table.variant_name == key[1], table.minute == key[2])
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(s.execute(q).rowcount)


_PRIMED: set[str] = set()


def _seen(worker_id: str) -> bool:
    return worker_id in _PRIMED


def _prime(p: psutil.Process, worker_id: str) -> float:
    """psutil's first cpu_percent call only starts the measurement; report the lifetime average instead."""
    _PRIMED.add(worker_id)
    p.cpu_percent(interval=None)
    t = p.cpu_times()
    age = max(time.time() - p.create_time(), 1e-3)
    return 100.0 * (t.user + t.system) / age
