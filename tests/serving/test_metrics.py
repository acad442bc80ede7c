"""Per-minute endpoint metrics: counts, latency percentiles from the log-scale histogram, batch counters."""

from __future__ import annotations

import math

from tailor.serving.metrics import EndpointMetrics, latency_bin, merge_histogram, percentile


def exact_percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def test_percentiles_are_within_the_bin_error_of_the_exact_order_statistic() -> None:
    m = EndpointMetrics()
    now = 1_700_000_000.0
    latencies = [float(100 + 37 * i % 9_000) for i in range(1_000)]  # 100 µs .. 9.1 ms, spread out
    for us in latencies:
        m.record("ep", "A", 200, us, 50.0, now)
    m.record("ep", "A", 503, 0.0, 10.0, now)  # no worker answered: counted, but not a model latency
    (bucket,) = m.drain().values()
    assert bucket.invocations == 1_001 and bucket.errors_5xx == 1
    assert sum(bucket.latency_histogram.values()) == len(latencies)
    for q in (0.5, 0.99):
        got, want = percentile(bucket.latency_histogram, q), exact_percentile(latencies, q)
        assert got is not None and abs(got - want) / want <= 0.026, (q, got, want)
    assert percentile({}, 0.5) is None


def test_histograms_merge_and_batches_add_up_per_minute() -> None:
    m = EndpointMetrics()
    t0 = 1_700_000_000.0 - 1_700_000_000.0 % 60
    m.batches("ep", "A", 3, 7, t0 + 1)
    m.batches("ep", "A", 2, 9, t0 + 30)
    m.batches("ep", "A", 1, 1, t0 + 61)  # the next minute
    first, second = (b for _, b in sorted(m.drain().items()))
    assert (first.batches, first.batched_images) == (5, 16) and (second.batches, second.batched_images) == (1, 1)
    a = {latency_bin(1_000.0): 2}
    merge_histogram(a, {latency_bin(1_000.0): 1, latency_bin(2_000.0): 1})
    assert sum(a.values()) == 4 and percentile(a, 0.5) is not None and percentile(a, 1.0) > percentile(a, 0.5)
