"""What data capture adds to an invocation's latency: ``python -m bench capture [--seconds S] [--rounds R]``.

One ``tailor server`` on loopback serves two endpoints of the same ResNet-20 (1x28x28, 10 classes; one worker
each): ``plain`` without DataCaptureConfig and ``captured`` with 100 % sampling of input and output (JSON
output, base64 PNG input) to a local bucket. wrk (one thread, 16 connections, bearer token) drives them in
rounds ordered plain, captured, captured, plain, … so load drifting with other work on the machine weighs on
both alike; the medians of the rounds' p99 are compared. Goal: capture at 100 % adds <= 1 ms to p99 at c=16.
The captured records are counted at the end (written off the request path by the capture thread).

The in-process part (``--hot-path-only``, seconds): the request path's cost per request; the writer thread's
own CPU per record (its thread clock) for a burst of 20,000 queued records and under steady traffic of ~1,000
records/s (its polls, config refreshes and file writes included); and how late a thread that sleeps 1 ms
between invocations, as the server's event loop waits in epoll, gets the GIL back with the writer running.

Before the change (a writer encoding each record with ``json.dumps``, ``uuid4()`` and ``strftime``, sleep(0)
after each, files of 500 records, 20 polls a second):

    quiet machine (``--rounds 3``, load average 0.66 before, 1.37 after): plain median 738 req/s, p99 31.4 ms
    (rounds 34.1 / 31.4 / 30.9); captured median 682 req/s, p99 33.8 ms (33.8 / 33.7 / 34.9): +2.4 ms p99 and
    -7.6 % throughput at c=16, over the 1 ms goal; writer 55.7 us CPU per record (process time); 17,881
    records for 17,881 invocations.
    load 1.1-4.1: writer 78-101 us CPU per record in a burst, 86-125 us steady.
    load 17: the wrk comparison could not resolve 1 ms (one endpoint's p99 moved by 69 ms between rounds).

After (records encoded in batches straight into bytes from pre-formatted pieces,
``tailor.hosting.capture_records``; 64 per GIL hold; files of up to 2,000 records; 5 polls a second). The
in-process part, before and after run back to back twice (``--hot-path-only``, load average 5.0-5.5):

                               before           after
    writer CPU, a burst        57.8 / 60.3 us   9.7 / 6.5 us per record (20,000 records: 40 / 10 files)
    writer CPU, steady         60-100 us        12.3-17.0 us per record (~1,000 records/s, polls included)
    request path, capture on   0.8-1.8 us       1.2-1.8 us per request (off: 0.2 us)
    wake-ups late, p99 on      1.3-4.6 ms       1.7-4.2 ms (off, the same runs: 1.0-3.1 / 2.0-2.8 ms; p50
                                                65-75 us throughout): the load's noise hides the writer's share

and two wrk runs:

    load 4.04 before, 4.56 after (``--rounds 3``):
    plain     c=16: median 491 req/s, p99 102.2 ms (rounds 112.0 / 101.6 / 102.2)
    captured  c=16: median 596 req/s, p99 51.8 ms (rounds 53.2 / 51.8 / 35.2)
    15,841 records written for 15,841 answered invocations, none dropped

    load 1.45 before, 2.58 after (``--rounds 4``; in-process at load 1.6: writer 11.1 us CPU per record in a
    burst, 16.8-17.0 us steady; wake-ups late by p99 348-364 us on, 410-892 us off):
    plain     c=16: median 585 req/s, p99 44.9 ms (rounds 77.8 / 38.5 / 47.6 / 42.2)
    captured  c=16: median 605 req/s, p99 42.4 ms (rounds 92.5 / 41.8 / 43.0 / 36.7)
    20,065 records written for 20,065 answered invocations, none dropped

Quiet machine, after (``--rounds 4``, load average 0.52 before the in-process part, 0.60 before wrk, 1.50 after;
nothing else running): in-process, request path 1.15 us on / 0.24 us off, writer 10.0 us CPU per record in a
burst (20,000 records, 10 files) and 16.0-16.3 us steady, wake-ups late by p99 180-285 us on / 131-152 us off;

    plain     c=16: median 740 req/s, p99 31.9 ms (rounds 31.2 / 32.5 / 30.1 / 37.0)
    captured  c=16: median 740 req/s, p99 32.0 ms (rounds 32.2 / 32.3 / 31.8 / 29.6)
    25,102 records written for 25,102 answered invocations, none dropped

and a second quiet run (load 0.20 before, 1.16 after): plain median 752 req/s, p99 31.1 ms (29.5 / 31.9 / 30.6 /
31.7); captured median 765 req/s, p99 31.4 ms (29.3 / 32.4 / 31.4 / 31.4); 25,938 records for 25,938 invocations;

so capture at 100 % adds +0.1 and +0.3 ms to the median p99 at c=16 (goal <= 1 ms) and no throughput (before the
change, the same kind of quiet run: +2.4 ms and -7.6 %). The rounds' own spread (6.9 ms on the plain endpoint,
one outlier round) is wider than the goal, so the bench prints "not resolvable"; the paired rounds differ by
+1.1, -0.3, +1.6 and -7.4 ms in the first run, -0.2, +0.4, +0.9 and -0.3 ms in the second, and the in-process
figures bound what the writer can add.

Loaded runs, after: neither resolves 1 ms (one endpoint's p99 moved by 18 and 56 ms between rounds; the
differences, -50.4 and -2.5 ms, favour capture), but neither shows the +2.4 ms and -7.6 % throughput of before:
captured served 3-21 % more requests. The goal rests on the in-process figures: at ~700 records/s (the quiet
machine's c=16 rate) the writer now takes 5-12 ms of CPU a second (0.3-0.6 % of the 2 cores) against 40-70 ms
before. Its GIL holds are a chunk's encoding (~0.3 ms) a few times a second and a file's join (~1 ms for 2,000
records) every ~2 s: together under 1 % of the time, so a request meets one with under 1 % probability and then
waits at most that long.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench import loadavg
from bench.bench_serving import build_model, start_tailor, stop, write_images
from bench.bench_serving import wrk as run_wrk

CONCURRENCY = 16
GOAL_MS = 1.0


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="bench_capture")
    p.add_argument("--seconds", type=float, default=8.0, help="wrk duration per round")
    p.add_argument("--rounds", type=int, default=3, help="rounds per endpoint (alternating)")
    p.add_argument("--hot-path-only", action="store_true", help="only the in-process cost per request (no wrk)")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    print(f"load average before the in-process measure: {loadavg()}")
    hot_path_cost()
    if args.hot_path_only:
        return
    print(f"capture bench: c={CONCURRENCY}, {args.rounds} x {args.seconds:g} s per endpoint, {os.cpu_count()} cores")
    print(f"load average before: {loadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tailor-bench-capture-") as tmp:
        work = Path(tmp)
        tar, _ = build_model(work)
        raw, _ = write_images(work)
        results, records = run(work, tar, raw, args.seconds, args.rounds)
    print(f"load average after: {loadavg()}")
    report(results, records)


def hot_path_cost(n: int = 20_000) -> None:
    """CPU time, in this process, of what capture adds: the sample and the queue put on the request path (capture
    off: a dict lookup), and the writer thread's own CPU per record (its thread clock: encoding, file writes),
    for a burst of ``n`` queued records and under steady traffic; plus how late a thread that sleeps between
    invocations gets the GIL back while the writer drains (the writer runs in the server's process and shares the
    GIL with its event loop, which waits in epoll the same way).
    Figures that load on the machine stretches far less than a p99."""
    import time

    from tailor.db import Database
    from tailor.hosting.capture import CaptureConfigs, DataCapture, parse_config
    from tailor.hosting.logs import EndpointLogs
    from tailor.settings import load_settings
    from tailor.storage import Storage

    with tempfile.TemporaryDirectory(prefix="tailor-bench-capture-") as tmp:
        settings = load_settings(home=tmp).ensure_dirs()
        db = Database(settings).create_all()
        capture = DataCapture(CaptureConfigs(db), Storage(settings), EndpointLogs(settings), queue_max=n)
        capture.configs.put("endpoint", "on", parse_config(CAPTURE))
        capture._start = lambda: None  # type: ignore[method-assign]  # the request path alone, then the writer
        capture.plan("on"), capture.plan("off")
        for name in ("off", "on"):
            t0 = time.perf_counter()
            for _ in range(n):
                capture.offer(name, "AllTraffic", "image/png", BODY, "application/json", REPLY)
            print(f"  request path, capture {name:<3}: {(time.perf_counter() - t0) / n * 1e6:6.2f} us per request")
        del capture._start
        t0 = time.perf_counter()
        capture._start()
        capture.close()
        wall, stats = time.perf_counter() - t0, capture.stats()
        print(
            f"  writer, a burst: {stats['written']} records, {stats['files']} files, "
            f"{capture.counters.writer_cpu_s / n * 1e6:.1f} us CPU per record ({wall:.2f} s wall)",
            flush=True,
        )
        capture._start()
        try:
            for name in ("off", "on", "on", "off"):  # ABBA: load drifting during the probe weighs on both
                cpu, written = capture.counters.writer_cpu_s, capture.counters.written
                lags = _wake_lag(capture, name)
                print(
                    f"  wake-ups at {PROBE_RATE}/s, capture {name:<3}: late by p50 "
                    f"{lags[len(lags) // 2]:5.0f} us, p99 {lags[len(lags) * 99 // 100]:5.0f} us, "
                    f"max {lags[-1]:6.0f} us",
                    flush=True,
                )
                capture.close()  # flush: the records of this probe are written and counted
                if name == "on":
                    done = capture.counters.written - written
                    spent = (capture.counters.writer_cpu_s - cpu) / max(done, 1) * 1e6
                    print(f"  writer, steady: {done} records, {spent:.1f} us CPU per record (polls, flushes included)")
                capture._start()
        finally:
            capture.close()


PROBE_RATE = 1000  # wake-ups (and invocations) a second at most: above the ~700 req/s served at c=16
BODY, REPLY = b"\x89PNG" + os.urandom(300), b"[" + b"0.1, " * 9 + b"0.1]"  # a 28x28 PNG's size, 10 probs
CAPTURE = {
    "InitialSamplingPercentage": 100,
    "DestinationS3Uri": "s3://bench/capture",
    "CaptureOptions": [{"CaptureMode": "InputAndOutput"}],
    "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
}


def _wake_lag(capture: Any, name: str, seconds: float = 2.0) -> list[float]:
    """Offer an invocation every ``1 / PROBE_RATE`` s from this thread, sleeping in between as the server's event
    loop waits in epoll (the GIL released); how much later than asked each wake-up runs Python again, sorted
    (us): the kernel's wake-up plus the wait for the GIL."""
    import time

    lags: list[float] = []
    for _ in range(int(seconds * PROBE_RATE)):
        t0 = time.perf_counter()
        time.sleep(1 / PROBE_RATE)
        lags.append((time.perf_counter() - t0 - 1 / PROBE_RATE) * 1e6)
        capture.offer(name, "AllTraffic", "image/png", BODY, "application/json", REPLY)
    return sorted(lags)


def run(work: Path, tar: Path, raw: Path, seconds: float, rounds: int) -> tuple[dict[str, list[dict]], tuple[int, int]]:
    from tailor.client import Client

    settings, _env, url, proc, token = start_tailor(work, tar)
    results: dict[str, list[dict]] = {"plain": [], "captured": []}
    try:
        with Client(url=url, settings=settings) as client:
            client.create_model(ModelName="bench", PrimaryContainer={"ModelDataUrl": "s3://bench/model.tar.gz"})
            capture = {**CAPTURE, "DestinationS3Uri": "s3://capture/bench"}
            for name in results:
                extra = {"DataCaptureConfig": capture} if name == "captured" else {}
                variants = [{"VariantName": "AllTraffic", "ModelName": "bench"}]
                client.create_endpoint_config(EndpointConfigName=name, ProductionVariants=variants, **extra)
                client.create_endpoint(EndpointName=name, EndpointConfigName=name)
            for name in results:
                desc = client.wait_endpoint(name, timeout=180)
                if desc["EndpointStatus"] != "InService":
                    raise RuntimeError(f"{name}: {desc['EndpointStatus']}: {desc.get('FailureReason')}")
        headers = {"Content-Type": "image/png", "Authorization": f"Bearer {token}"}
        for name in results:  # warm-up: connections, batch shapes, the capture thread
            run_wrk(f"{url}/endpoints/{name}/invocations", raw, headers, CONCURRENCY, 2.0, work)
        for i in range(rounds):
            # ABBA order (plain, captured, captured, plain, …): load that drifts during the run weighs on both.
            for name in list(results) if i % 2 == 0 else list(results)[::-1]:
                r = run_wrk(f"{url}/endpoints/{name}/invocations", raw, headers, CONCURRENCY, seconds, work)
                results[name].append(r)
                bad = f"  non-2xx={r['bad']}" if r["bad"] else ""
                print(
                    f"  round {i + 1} {name:<9} {r['rps']:>6.0f} req/s  p50 {r['p50_ms']:6.2f} ms  "
                    f"p99 {r['p99_ms']:6.2f} ms{bad}",
                    flush=True,
                )
    finally:
        stop(proc)  # closing writes what the capture thread still held
    bucket = settings.buckets_dir / "capture" / "bench" / "captured"
    records = sum(len(f.read_text().splitlines()) for f in bucket.rglob("*.jsonl"))
    from tailor.core import Tailor

    with Tailor.open(settings) as t:  # the server flushed its metrics on close: how many were answered
        points = t.hosting.endpoint_metrics("captured")["Metrics"]
    answered = sum(p["Invocations"] - p["Invocation4XXErrors"] - p["Invocation5XXErrors"] for p in points)
    return results, (records, answered)


def report(results: dict[str, list[dict]], counts: tuple[int, int]) -> None:
    med: dict[str, float] = {}
    for name, rounds in results.items():
        p99s = [r["p99_ms"] for r in rounds]
        med[name] = statistics.median(p99s)
        rps = statistics.median(r["rps"] for r in rounds)
        print(
            f"{name:<9} c={CONCURRENCY}: median {rps:>5.0f} req/s, p99 {med[name]:.1f} ms "
            f"(rounds {' / '.join(f'{x:.1f}' for x in p99s)})"
        )
    added = med["captured"] - med["plain"]
    # What one endpoint's p99 varies by from round to round: differences below it are noise.
    spread = max(max(r["p99_ms"] for r in rounds) - min(r["p99_ms"] for r in rounds) for rounds in results.values())
    if spread > GOAL_MS:
        verdict = f"not resolvable in this run: one endpoint's p99 varies by {spread:.1f} ms between rounds"
    else:
        verdict = "met" if added <= GOAL_MS else "NOT met"
    print(f"p99 added by capture at 100 %: {added:+.1f} ms (goal <= {GOAL_MS:g} ms: {verdict})")
    print(f"captured endpoint: {counts[0]} records written for {counts[1]} answered invocations")
