"""Soak: ``python -m bench soak [--minutes N] [--concurrency C] [--instances K] [--seed S]``.

Everything runs on 127.0.0.1 in a temporary TAILOR_HOME and stops by itself:

1. a real ``tailor server`` trains a tiny model with the built-in algorithm (two synthetic classes of 28x28
   PNGs, at most 2 epochs in a 20 s budget) and deploys it on an endpoint with K (2) workers;
2. capacity: C (16) keep-alive connections in a closed loop for 3-15 s -> req/s;
3. N minutes of invocations at 50 % of that capacity: an open-loop schedule served by at most C connections,
   so a stall never piles up unbounded work. Meanwhile a random worker is SIGKILLed at random intervals (mean
   N/8 minutes, at least 4 s) and, at half time, the server is restarted (SIGTERM, then a new server on the
   same port and home);
4. after the restart every training job, model, endpoint config and endpoint recorded before it must still be
   there with the same creation time, and the endpoint InService again;
5. prints requests, non-2xx by code, p50/p99 (from send to last byte), RSS of the server and the workers at
   the start and end of each server's life under load, and a verdict against the goals: no 5XX or refused
   connection outside the windows (WINDOW_S = 3 s after a kill; a restart's window runs from its SIGTERM to
   3 s after the first answer of the new server), RSS growth < 10 %, no lost record, and the chaos ran.

The last line, ``summary-json: {...}``, is the same summary for machines (the test reads it).

Measured (10 minutes, 2-core VM shared with other engineers, load average 14.9 before / 15.7 after): capacity
210 req/s, driven at 105 req/s; 63,116 requests, 62,116 2xx, 765 refused connections and 235 x 503, all inside
the windows of 5 kills and 1 restart (8.0 s), 0 outside; p50 21 ms, p99 120 ms; RSS server + 2 workers
105.0 + 184.6 -> 105.4 + 185.4 MB before the restart (+0.4 %), 99.7 + 182.0 -> 100.2 + 185.0 MB after
(+1.2 %); no lost record. Verdict: PASS.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import loadavg

WINDOW_S = 3.0  # after a worker kill, or after a restarted server's first answer
RSS_GROWTH_LIMIT = 0.10
# A relaunched worker loads its model and warms up for a few seconds: RSS samples that close to a kill or a
# restart would read as growth that is only start-up, so they are left out of the comparison.
RSS_SETTLE_S = 10.0
REQUEST_TIMEOUT_S = 10.0
ENDPOINT = "soak"


# -- the server ------------------------------------------------------------------------------------------------
class Server:
    """``tailor server`` as a child process on a fixed loopback port; restartable on the same home."""

    def __init__(self, home: Path, port: int, log: Path) -> None:
        self.home, self.port, self.log = home, port, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self, timeout: float = 120.0) -> None:
        import httpx

        env = {**os.environ, "TAILOR_HOME": str(self.home), "OMP_WAIT_POLICY": "PASSIVE"}
        cmd = [sys.executable, "-m", "tailor.cli.main", "server", "--port", str(self.port), "--log-level", "warning"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log.read_text()[-1500:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not up within {timeout:g} s: {self.log.read_text()[-1500:]}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (graceful: workers are stopped), SIGKILL after ``timeout``; its workers follow their owner."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def workers(self) -> list[Any]:
        import psutil

        if self.proc is None or self.proc.poll() is not None:
            return []
        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return []
        out = []
        for p in kids:
            try:
                if "tailor.serving.worker" in " ".join(p.cmdline()):
                    out.append(p)
            except psutil.Error:
                continue
        return out

    def rss(self) -> tuple[int, int, int]:
        """(server RSS, sum of workers' RSS, worker count) in bytes."""
        import psutil

        try:
            server = psutil.Process(self.proc.pid).memory_info().rss if self.proc else 0
        except psutil.Error:
            server = 0
        total, n = 0, 0
        for p in self.workers():
            try:
                total += p.memory_info().rss
                n += 1
            except psutil.Error:
                continue
        return server, total, n


# -- set-up: data, a tiny training job, an endpoint -------------------------------------------------------------
def _png(rng: np.random.Generator, bright: bool) -> bytes:
    from PIL import Image

    lo, hi = (150, 256) if bright else (0, 106)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(lo, hi, (28, 28), dtype=np.uint8), "L").save(buf, format="PNG")
    return buf.getvalue()


def deploy(server: Server, settings: Any, instances: int) -> dict[str, Any]:
    """Train the tiny model through the HTTP API, deploy it; returns the training job's description."""
    from tailor.client import Client
    from tailor.storage import Storage

    rng = np.random.default_rng(0)
    storage = Storage(settings)
    for label in (0, 1):
        for i in range(80):
            storage.write_bytes(f"s3://soak/train/class{label}/{i}.png", _png(rng, bool(label)))
    with Client(url=server.url, settings=settings, timeout=120) as client:
        job = client.create_training_job(
            TrainingJobName="soak-train",
            AlgorithmSpecification={"TrainingImage": "tailor/image-classification"},
            HyperParameters={
                "num_classes": "2",
                "num_training_samples": "160",
                "image_shape": "1,28,28",
                "epochs": "2",
                "mini_batch_size": "32",
                "time_budget": "20",
            },
            InputDataConfig=[
                {
                    "ChannelName": "train",
                    "ContentType": "application/x-image",
                    "DataSource": {"S3DataSource": {"S3Uri": "s3://soak/train"}},
                }
            ],
            OutputDataConfig={"S3OutputPath": "s3://soak/models"},
        )
        desc = job.wait(timeout=600)
        if desc["TrainingJobStatus"] != "Completed":
            raise RuntimeError(f"soak training job {desc['TrainingJobStatus']}: {desc.get('FailureReason')}")
        client.create_model(
            ModelName=ENDPOINT, PrimaryContainer={"ModelDataUrl": desc["ModelArtifacts"]["S3ModelArtifacts"]}
        )
        client.create_endpoint_config(
            EndpointConfigName=ENDPOINT,
            ProductionVariants=[
                {"VariantName": "AllTraffic", "ModelName": ENDPOINT, "InitialInstanceCount": instances}
            ],
        )
        client.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=ENDPOINT)
        ep = client.wait_endpoint(ENDPOINT, timeout=300)
        if ep["EndpointStatus"] != "InService":
            raise RuntimeError(f"soak endpoint {ep['EndpointStatus']}: {ep.get('FailureReason')}")
    return desc


def records(server: Server, settings: Any) -> dict[str, dict[str, str]]:
    """Every record the server lists: kind -> {name: creation time (+ status)}."""
    from tailor.client import Client

    def stamp(item: dict[str, Any], status: str | None) -> str:
        return f"{item.get('CreationTime')}|{item.get(status) if status else ''}"

    with Client(url=server.url, settings=settings, timeout=60) as c:
        jobs = c.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
        models = c.list_models(MaxResults=100)["Models"]
        configs = c.list_endpoint_configs(MaxResults=100)["EndpointConfigs"]
        endpoints = c.list_endpoints(MaxResults=100)["Endpoints"]
    return {
        "training-jobs": {j["TrainingJobName"]: stamp(j, "TrainingJobStatus") for j in jobs},
        "models": {m["ModelName"]: stamp(m, None) for m in models},
        "endpoint-configs": {e["EndpointConfigName"]: stamp(e, None) for e in configs},
        "endpoints": {e["EndpointName"]: stamp(e, None) for e in endpoints},
    }


# -- load: a minimal HTTP/1.1 keep-alive client (a few µs of Python per request, so the client stays light) ----
@dataclass
class Shot:
    sent: float  # seconds since the driven phase began
    status: int | str  # HTTP status, or "conn" / "timeout"
    latency: float


class Load:
    def __init__(self, port: int, path: str, headers: dict[str, str], bodies: list[bytes]) -> None:
        self.port = port
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.requests = [
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}Content-Length: {len(b)}\r\n\r\n".encode() + b
            for b in bodies
        ]
        self.shots: list[Shot] = []
        self.t0 = time.monotonic()

    async def _once(self, conn: list[Any], i: int) -> int:
        if conn[0] is None:
            conn[:] = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = conn
        writer.write(self.requests[i % len(self.requests)])
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        if "content-length" in hdrs:
            await reader.readexactly(int(hdrs["content-length"]))
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        if hdrs.get("connection", "").lower() == "close":
            self._drop(conn)
        return status

    @staticmethod
    def _drop(conn: list[Any]) -> None:
        if conn[0] is not None:
            conn[1].close()
        conn[:] = [None, None]

    async def shoot(self, conn: list[Any], i: int) -> Shot:
        start = time.monotonic()
        try:
            status: int | str = await asyncio.wait_for(self._once(conn, i), REQUEST_TIMEOUT_S)
        except TimeoutError:
            status = "timeout"
            self._drop(conn)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
            status = "conn"
            self._drop(conn)
        shot = Shot(start - self.t0, status, time.monotonic() - start)
        self.shots.append(shot)
        if status in ("conn", "timeout"):
            await asyncio.sleep(0.05)  # a refused connection answers at once: do not spin on it
        return shot

    async def closed_loop(self, connections: int, seconds: float) -> float:
        """Capacity: every connection sends back to back; returns 2xx answers per second."""
        end = time.monotonic() + seconds
        ok = 0

        async def worker(k: int) -> None:
            nonlocal ok
            conn: list[Any] = [None, None]
            i = k
            while time.monotonic() < end:
                shot = await self.shoot(conn, i)
                ok += isinstance(shot.status, int) and 200 <= shot.status < 300
                i += connections
            self._drop(conn)

        t0 = time.monotonic()
        await asyncio.gather(*(worker(k) for k in range(connections)))
        return ok / (time.monotonic() - t0)

    async def open_loop(self, rate: float, connections: int, stop: asyncio.Event) -> None:
        """Request i is due at i/rate; at most ``connections`` are in flight, late ones go as soon as one frees."""
        self.t0 = start = time.monotonic()
        next_i = 0

        async def worker() -> None:
            nonlocal next_i
            conn: list[Any] = [None, None]
            while not stop.is_set():
                i = next_i
                next_i += 1
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self.shoot(conn, i)
            self._drop(conn)

        await asyncio.gather(*(worker() for _ in range(connections)))


# -- chaos -----------------------------------------------------------------------------------------------------
@dataclass
class Chaos:
    kills: list[float] = field(default_factory=list)  # times (driven-phase clock) of worker SIGKILLs
    restart_at: float | None = None
    restart_answered: float | None = None  # first 2xx after the restart
    restart_seconds: float | None = None
    rss: list[tuple[float, int, int, int, int]] = field(default_factory=list)  # t, life, server, workers, n

    def windows(self) -> list[tuple[float, float]]:
        out = [(t, t + WINDOW_S) for t in self.kills]
        if self.restart_at is not None:
            out.append((self.restart_at, (self.restart_answered or float("inf")) + WINDOW_S))
        return out


async def chaos(
    server: Server, load: Load, seconds: float, rng: random.Random, out: Chaos, stop: asyncio.Event
) -> None:
    """Kill a random worker now and then; restart the server at half time; sample RSS every 2 s. The run ends
    after ``seconds``, or once the restarted server has answered for WINDOW_S (at most 120 s later)."""
    mean = max(seconds / 8, 4.0)
    next_kill = rng.uniform(0.2, 0.4) * seconds
    restart_at = seconds / 2
    life = 0
    next_sample = 0.0

    def done(now: float) -> bool:
        settled = out.restart_answered is not None and now > out.restart_answered + WINDOW_S
        return now >= seconds and (settled or now >= seconds + 120)

    while not done(now := time.monotonic() - load.t0):
        if now >= next_sample:
            out.rss.append((now, life, *server.rss()))
            next_sample = now + 2.0
        if out.restart_at is None and now >= restart_at:
            out.restart_at = now
            t0 = time.monotonic()
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(server.start)
            out.restart_seconds = time.monotonic() - t0
            life = 1
            next_kill = max(next_kill, time.monotonic() - load.t0 + mean / 2)
        elif now >= next_kill and (
            now < restart_at - 1 or (out.restart_answered is not None and now > out.restart_answered + WINDOW_S)
        ):
            workers = server.workers()
            if workers:
                victim = rng.choice(workers)
                try:
                    victim.send_signal(signal.SIGKILL)
                    out.kills.append(now)
                except Exception:  # noqa: BLE001 - already gone (restarted between listing and kill)
                    pass
            next_kill = now + rng.uniform(0.5, 1.5) * mean
        if out.restart_at is not None and out.restart_answered is None:
            answered = [s.sent for s in load.shots[-200:] if s.sent > out.restart_at and s.status == 200]
            if answered:
                out.restart_answered = min(answered)
        await asyncio.sleep(0.1)
    out.rss.append((time.monotonic() - load.t0, life, *server.rss()))
    stop.set()


# -- report ----------------------------------------------------------------------------------------------------


def _rss_growth(
    samples: list[tuple[float, int, int, int, int]], windows: list[tuple[float, float]], instances: int
) -> dict[str, Any]:
    """Per server life: server and workers' RSS at its first and last steady sample under load (all workers up,
    none started within RSS_SETTLE_S), and the growth."""
    out: dict[str, Any] = {}

    def steady(s: tuple[float, int, int, int, int]) -> bool:
        return s[2] > 0 and s[4] == instances and not any(a <= s[0] <= b + RSS_SETTLE_S for a, b in windows)

    for life in sorted({s[1] for s in samples}):
        mine = [s for s in samples if s[1] == life and steady(s)]
        if len(mine) < 2:
            continue
        first, last = mine[0], mine[-1]
        start, end = first[2] + first[3], last[2] + last[3]
        out[f"life{life}"] = {
            "server_mb": [round(first[2] / 2**20, 1), round(last[2] / 2**20, 1)],
            "workers_mb": [round(first[3] / 2**20, 1), round(last[3] / 2**20, 1)],
            "workers": [first[4], last[4]],
            "growth": round(end / start - 1, 4),
        }
    return out


def summarize(
    load: Load, chaos_out: Chaos, capacity: float, rate: float, lost: list[str], instances: int
) -> dict[str, Any]:
    shots = load.shots
    windows = chaos_out.windows()
    inside = lambda t: any(a <= t <= b for a, b in windows)  # noqa: E731
    codes: dict[str, int] = {}
    bad_outside: dict[str, int] = {}
    for s in shots:
        if s.status == 200:
            continue
        codes[str(s.status)] = codes.get(str(s.status), 0) + 1
        server_side = not isinstance(s.status, int) or s.status >= 500
        if server_side and not inside(s.sent):
            bad_outside[str(s.status)] = bad_outside.get(str(s.status), 0) + 1
    ok = sorted(s.latency for s in shots if s.status == 200)
    pct = lambda q: round(ok[min(len(ok) - 1, int(q * len(ok)))] * 1e3, 2) if ok else None  # noqa: E731
    rss = _rss_growth(chaos_out.rss, windows, instances)
    growth = max((v["growth"] for v in rss.values()), default=None)
    goals = {
        "no_5xx_outside_windows": not bad_outside,
        "rss_growth_under_10pct": growth is not None and growth < RSS_GROWTH_LIMIT,
        "no_lost_record": not lost,
        "chaos_ran": bool(chaos_out.kills) and chaos_out.restart_answered is not None,
    }
    return {
        "capacity_rps": round(capacity, 1),
        "target_rps": round(rate, 1),
        "requests": len(shots),
        "ok": len(ok),
        "non_2xx": codes,
        "server_errors_outside_windows": bad_outside,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "kills": len(chaos_out.kills),
        "restart_seconds": round(chaos_out.restart_seconds or 0, 1),
        "rss": rss,
        "lost_records": lost,
        "goals": goals,
        "verdict": "PASS" if all(goals.values()) else "FAIL",
    }


def _print(summary: dict[str, Any], minutes: float) -> None:
    s = summary
    print(f"\nsoak {minutes:g} min: capacity {s['capacity_rps']} req/s, driven at {s['target_rps']} req/s")
    print(f"  requests {s['requests']:,}, 2xx {s['ok']:,}, non-2xx by code {s['non_2xx'] or '{}'}")
    print(f"  latency p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms (2xx, send to last byte)")
    print(f"  worker kills {s['kills']}, server restart took {s['restart_seconds']} s")
    print(f"  5XX / refused outside the {WINDOW_S:g} s windows: {s['server_errors_outside_windows'] or 0}")
    for life, v in s["rss"].items():
        print(
            f"  RSS {life}: server {v['server_mb'][0]} -> {v['server_mb'][1]} MB, {v['workers'][0]}->"
            f"{v['workers'][1]} workers {v['workers_mb'][0]} -> {v['workers_mb'][1]} MB, growth {v['growth']:.1%}"
        )
    print(f"  lost records: {s['lost_records'] or 'none'}")
    for goal, met in s["goals"].items():
        print(f"  goal {goal}: {'met' if met else 'NOT met'}")
    print(f"verdict: {s['verdict']}")


def run(minutes: float, concurrency: int, instances: int, seed: int, work: Path) -> dict[str, Any]:
    from bench.bench_serving import free_port
    from tailor.auth.keys import KeyStore, init_admin
    from tailor.settings import load_settings

    seconds = minutes * 60
    home = work / "home"
    settings = load_settings(home=str(home)).ensure_dirs()
    new, _ = init_admin(settings)
    server = Server(home, free_port(), work / "server.log")
    server.start()
    try:
        t0 = time.monotonic()
        deploy(server, settings, instances)
        print(f"  set-up (train + deploy): {time.monotonic() - t0:.1f} s", flush=True)
        before = records(server, settings)
        token, _ = KeyStore(settings).issue_token(new.info.access_key_id)
        rng = np.random.default_rng(seed)
        bodies = [_png(rng, bool(i % 2)) for i in range(8)]
        headers = {"Content-Type": "image/png", "Authorization": f"Bearer {token}"}
        load = Load(server.port, f"/endpoints/{ENDPOINT}/invocations", headers, bodies)
        cap_seconds = min(15.0, max(3.0, seconds * 0.05))
        capacity = asyncio.run(load.closed_loop(concurrency, cap_seconds))
        rate = max(1.0, capacity / 2)
        print(f"  capacity {capacity:.0f} req/s over {cap_seconds:g} s; driving {rate:.0f} req/s", flush=True)
        load.shots.clear()
        out = Chaos()

        async def drive() -> None:
            stop = asyncio.Event()
            await asyncio.gather(
                load.open_loop(rate, concurrency, stop), chaos(server, load, seconds, random.Random(seed), out, stop)
            )

        asyncio.run(drive())
        after = records(server, settings)
        lost = [
            f"{kind}/{name}"
            for kind, items in before.items()
            for name, v in items.items()
            if after[kind].get(name) != v
        ]
        return summarize(load, out, capacity, rate, lost, instances)
    finally:
        server.stop()


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m bench soak")
    p.add_argument("--minutes", type=float, default=10.0, help="length of the driven phase")
    p.add_argument("--concurrency", type=int, default=16, help="connections (bounds requests in flight)")
    p.add_argument("--instances", type=int, default=2, help="endpoint workers")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    print(f"soak: {args.minutes:g} min, {os.cpu_count()} cores, load average before {loadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tailor-soak-") as tmp:
        summary = run(args.minutes, args.concurrency, args.instances, args.seed, Path(tmp))
    summary["loadavg_after"] = loadavg()
    _print(summary, args.minutes)
    print(f"load average after: {summary['loadavg_after']}")
    print("summary-json: " + json.dumps(summary, sort_keys=True), flush=True)
