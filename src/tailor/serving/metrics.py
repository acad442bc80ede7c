"""Per endpoint, variant and minute invocation metrics, named as SageMaker's CloudWatch metrics.

The router records each invocation in memory (a dict update under a lock: ~1 µs); the hosting service flushes
the deltas into ``hosting_endpoint_metrics`` every couple of seconds, so any process (CLI, REST, Prometheus)
reads the same figures and they survive a restart. Latencies are in microseconds, as SageMaker's.

Percentiles (``ModelLatencyP50``/``P99``) come from a per-minute log-scale histogram of ModelLatency: bins grow
by 5 %, so a reported percentile is within 2.5 % of the exact order statistic, and one minute costs at most a
few hundred integers however many requests it saw. Realised batch size comes from the workers' own batch
counters (``Batches``, ``BatchedImages``), sampled by the process that owns them.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime


def minute_of(ts: float) -> datetime:
    return datetime.fromtimestamp(ts - ts % 60, UTC)


_GROWTH = 1.05  # histogram bin ratio: bin b holds [1.05**b, 1.05**(b+1)) µs
_LOG_GROWTH = math.log(_GROWTH)


def latency_bin(us: float) -> int:
    return int(math.log(us) / _LOG_GROWTH) if us > 1.0 else 0


def percentile(histogram: dict[int, int], q: float) -> float | None:
    """The ``q``-quantile (0..1) of a latency histogram (bin -> count): the geometric middle of its bin."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))  # nearest-rank definition
    seen = 0
    for b in sorted(histogram):
        seen += histogram[b]
        if seen >= rank:
            return _GROWTH ** (b + 0.5) if b > 0 else 1.0
    return None


def merge_histogram(into: dict[int, int], other: dict[int, int]) -> dict[int, int]:
    for b, n in other.items():
        into[b] = into.get(b, 0) + n
    return into


@dataclass
class Totals:
    """Cumulative counters since this process started (Prometheus counters)."""

    invocations: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    model_latency_us: float = 0.0
    overhead_latency_us: float = 0.0


@dataclass
class Bucket(Totals):
    """One endpoint variant's minute: the invocation counters plus the sampled worker figures."""

    max_model_latency_us: float = 0.0
    cpu_percent: float = 0.0
    memory_bytes: float = 0.0
    samples: int = 0
    instances: int = 0
    latency_histogram: dict[int, int] = field(default_factory=dict)  # ModelLatency bin -> invocations
    batches: int = 0  # batches the variant's workers ran (sampled deltas)
    batched_images: int = 0  # images in those batches
    mismatched_inputs: int = 0  # decoded images whose size or colour mode differed from the model's (sampled)


Key = tuple[str, str, datetime]


class EndpointMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[Key, Bucket] = {}
        self.totals: dict[tuple[str, str], Totals] = {}

    def record(self, endpoint: str, variant: str, status: int, model_us: float, overhead_us: float, now: float) -> None:
        with self._lock:
            b = self._bucket(endpoint, variant, now)
            t = self.totals.get((endpoint, variant))
            if t is None:
                t = self.totals[(endpoint, variant)] = Totals()
            b.invocations += 1
            t.invocations += 1
            if 400 <= status < 500:
                b.errors_4xx += 1
                t.errors_4xx += 1
            elif status >= 500:
                b.errors_5xx += 1
                t.errors_5xx += 1
            b.model_latency_us += model_us
            b.overhead_latency_us += overhead_us
            t.model_latency_us += model_us
            t.overhead_latency_us += overhead_us
            b.max_model_latency_us = max(b.max_model_latency_us, model_us)
            if model_us > 0:  # 0 marks "no worker answered" (timeouts, no worker): not a model latency
                k = latency_bin(model_us)
                b.latency_histogram[k] = b.latency_histogram.get(k, 0) + 1

    def sample(
        self, endpoint: str, variant: str, cpu_percent: float, memory_bytes: float, instances: int, now: float
    ) -> None:
        """One resource sample of one worker (CPU % of one core, RSS bytes) and the variant's instance count."""
        with self._lock:
            b = self._bucket(endpoint, variant, now)
            b.cpu_percent += cpu_percent
            b.memory_bytes += memory_bytes
            b.samples += 1
            b.instances = max(b.instances, instances)

    def batches(self, endpoint: str, variant: str, batches: int, images: int, now: float, mismatched: int = 0) -> None:
        """Batches run (and images in them) by one variant's workers since the previous sample, and the inputs
        whose size or colour mode they had to change."""
        with self._lock:
            b = self._bucket(endpoint, variant, now)
            b.batches += batches
            b.batched_images += images
            b.mismatched_inputs += mismatched

    def _bucket(self, endpoint: str, variant: str, now: float) -> Bucket:
        """This minute's bucket of a variant (created empty); the caller holds the lock."""
        key = (endpoint, variant, minute_of(now))
        b = self._pending.get(key)
        if b is None:
            b = self._pending[key] = Bucket()
        return b

    def drain(self) -> dict[Key, Bucket]:
        with self._lock:
            out, self._pending = self._pending, {}
        return out
