"""Routing an endpoint invocation to a model worker: weighted across variants, least-outstanding within one.

The routing table (variants, weights, the ready workers' sockets) comes from the hosting service and is cached
for ``ttl_s`` (0.25 s) per endpoint, so the hot path does no database work (an expired table keeps serving
while one background thread re-reads it: the event loop never waits on the database except for an endpoint's
first request after a start or an invalidation); a routing change (UpdateEndpoint)
invalidates it in this process at once, and other processes see it within the TTL while the old workers keep
serving for a drain period longer than the TTL. A worker that is gone (crashed, stopped) fails fast with
``WorkerGone``; the router drops its cached table and retries on another worker, so a switch drops nothing.
When no worker is left the caller gets 503 at once instead of waiting.
"""

from __future__ import annotations

import asyncio
import random
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from tailor.errors import ServiceUnavailableError
from tailor.serving import wire
from tailor.serving.metrics import EndpointMetrics

MAX_ATTEMPTS = 3
INVOKE_TIMEOUT_S = 60.0  # SageMaker's invocation timeout; a stopped (not dead) worker must not hang callers


@dataclass(frozen=True)
class VariantRoute:
    name: str
    weight: float
    sockets: tuple[str, ...]


@dataclass(frozen=True)
class RouteTable:
    endpoint: str
    variants: tuple[VariantRoute, ...]
    expires: float


@dataclass(frozen=True)
class Invocation:
    reply: wire.Reply
    variant: str


Resolver = Callable[[str], tuple[VariantRoute, ...]]


class Router:
    def __init__(self, resolve: Resolver, metrics: EndpointMetrics, *, ttl_s: float = 0.25) -> None:
        self._resolve = resolve
        self.metrics = metrics
        self.ttl_s = ttl_s
        self._tables: dict[str, RouteTable] = {}
        self._refreshing: set[str] = set()
        self._generation = 0  # bumped by invalidate(): a refresh that started before it is discarded
        # Connections belong to an event loop: one pool per loop (the server's, or the sync client's thread).
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, wire.WorkerConnection]] = (
            weakref.WeakKeyDictionary()
        )

    def invalidate(self, endpoint: str | None = None) -> None:
        self._generation += 1
        if endpoint is None:
            self._tables.clear()
        else:
            self._tables.pop(endpoint, None)

    def _table(self, endpoint: str) -> RouteTable:
        table = self._tables.get(endpoint)
        now = time.monotonic()
        if table is None:
            table = RouteTable(endpoint, self._resolve(endpoint), now + self.ttl_s)
            self._tables[endpoint] = table
        elif table.expires < now and endpoint not in self._refreshing:
            self._refresh(endpoint)
        return table

    def _refresh(self, endpoint: str) -> None:
        """Re-read ``endpoint``'s table on a thread; meanwhile the expired one serves (the drain period of old
        workers, 1 s, covers the TTL plus this read). A failed read (endpoint deleted, not InService) drops the
        table, so the next request resolves inline and gets the error."""
        self._refreshing.add(endpoint)
        generation = self._generation
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(None, self._resolve, endpoint)

        def done(f: asyncio.Future[tuple[VariantRoute, ...]]) -> None:
            self._refreshing.discard(endpoint)
            if generation != self._generation:
                return
            if f.cancelled() or f.exception() is not None:
                self._tables.pop(endpoint, None)
            else:
                self._tables[endpoint] = RouteTable(endpoint, f.result(), time.monotonic() + self.ttl_s)

        fut.add_done_callback(done)

    def _pool(self) -> dict[str, wire.WorkerConnection]:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._pools[loop] = {}
        return pool

    def _pick(self, table: RouteTable, avoid: set[str]) -> tuple[str, wire.WorkerConnection] | None:
        candidates = [v for v in table.variants if v.weight > 0 and any(s not in avoid for s in v.sockets)]
        if not candidates:
            candidates = [v for v in table.variants if any(s not in avoid for s in v.sockets)]
        if not candidates:
            return None
        variant = candidates[0] if len(candidates) == 1 else _weighted(candidates)
        pool = self._pool()
        best: wire.WorkerConnection | None = None
        sockets = [s for s in variant.sockets if s not in avoid]
        start = random.randrange(len(sockets))  # ties go to a random worker, not always the first
        for i in range(len(sockets)):
            path = sockets[(start + i) % len(sockets)]
            conn = pool.get(path)
            if conn is None:
                conn = pool[path] = wire.WorkerConnection(path)
            if best is None or conn.outstanding < best.outstanding:
                best = conn
        assert best is not None
        return variant.name, best

    async def invoke(self, endpoint: str, content_type: str, accept: str, body: bytes) -> Invocation:
        """Send one invocation; records Invocations/4XX/5XX/ModelLatency/OverheadLatency for the variant."""
        t0 = time.perf_counter()
        avoid: set[str] = set()
        last_variant = ""
        for _attempt in range(MAX_ATTEMPTS):
            picked = self._pick(self._table(endpoint), avoid)
            if picked is None:
                break
            variant, conn = picked
            last_variant = variant
            t1 = time.perf_counter()
            try:
                async with asyncio.timeout(INVOKE_TIMEOUT_S):
                    reply = await conn.request(wire.OP_INVOKE, content_type, accept, body)
            except TimeoutError:
                self.metrics.record(endpoint, variant, 503, 0.0, (time.perf_counter() - t0) * 1e6, time.time())
                raise ServiceUnavailableError(
                    f"endpoint {endpoint!r}: the model worker did not answer within {INVOKE_TIMEOUT_S:g} s"
                ) from None
            except wire.WorkerGone:
                avoid.add(conn.socket_path)
                self.invalidate(endpoint)
                continue
            t2 = time.perf_counter()
            model_us = (t2 - t1) * 1e6
            self.metrics.record(endpoint, variant, reply.status, model_us, (t2 - t0) * 1e6 - model_us, time.time())
            return Invocation(reply, variant)
        if last_variant:
            self.metrics.record(endpoint, last_variant, 503, 0.0, (time.perf_counter() - t0) * 1e6, time.time())
        raise ServiceUnavailableError(f"endpoint {endpoint!r} has no model worker available right now: retry shortly")

    async def close(self) -> None:
        pool = self._pools.get(asyncio.get_running_loop(), {})
        for conn in pool.values():
            await conn.close()
        pool.clear()


def _weighted(variants: list[VariantRoute]) -> VariantRoute:
    total = sum(v.weight for v in variants)
    if total <= 0:
        return random.choice(variants)
    x = random.random() * total
    for v in variants:
        x -= v.weight
        if x < 0:
            return v
    return variants[-1]
