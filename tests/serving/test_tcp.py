"""Frames over TCP (a worker on another machine): the model worker on a thread, reached by the router with its
per-instance token; a connection without the token is closed before any frame is read."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from tailor.errors import ServiceUnavailableError
from tailor.serving import wire
from tailor.serving.loader import load_model
from tailor.serving.metrics import EndpointMetrics
from tailor.serving.preprocess import decode_image
from tailor.serving.router import Router, VariantRoute
from tailor.serving.worker import ThreadedWorker
from tests.serving.artifacts import png_bytes


@pytest.fixture
def worker(model_tar: Path) -> ThreadedWorker:
    w = ThreadedWorker(model_tar, host="127.0.0.1", token=secrets.token_hex(32), options={"max_batch_size": 8})
    yield w
    w.stop()


def test_router_invokes_a_tcp_worker_with_its_token(worker: ThreadedWorker, model_tar: Path) -> None:
    tcp = wire.parse_tcp(worker.address)
    assert tcp is not None and tcp.host == "127.0.0.1" and tcp.port > 0 and len(tcp.token) == 64
    assert wire.ping(worker.address)

    bodies = [png_bytes(i) for i in range(6)]
    router = Router(lambda name: (VariantRoute("AllTraffic", 1.0, (worker.address,)),), EndpointMetrics())

    async def main() -> list[wire.Reply]:
        try:
            return [r.reply for r in await asyncio.gather(*(router.invoke("e", "image/png", "", b) for b in bodies))]
        finally:
            await router.close()

    replies = asyncio.run(main())
    want = load_model(model_tar).predict(np.stack([decode_image(b, (1, 28, 28)) for b in bodies]))
    assert [r.status for r in replies] == [200] * 6
    assert np.allclose([json.loads(r.body) for r in replies], want, atol=1e-6)
    assert wire.stats(worker.address)["images"] == 6


def test_a_connection_without_the_token_gets_nothing(worker: ThreadedWorker) -> None:
    tcp = wire.parse_tcp(worker.address)
    assert tcp is not None
    assert wire.call(wire.tcp_address(tcp.host, tcp.port, "f" * 64), wire.OP_PING, 2.0) is None
    # A bare frame with no hello at all: the worker closes the connection without answering.
    with socket.create_connection((tcp.host, tcp.port), timeout=5) as s:
        s.sendall(wire.pack_request(1, wire.OP_STATS, "", "", b"") * 4)
        assert s.recv(65536) == b""
    assert wire.stats(worker.address)["images"] == 0  # nothing reached the model


def test_a_stopped_tcp_worker_is_a_quick_503(model_tar: Path) -> None:
    w = ThreadedWorker(model_tar, host="127.0.0.1", token=secrets.token_hex(32), options={})
    address = w.address
    w.stop()
    assert not w.running and not wire.ping(address)
    router = Router(lambda name: (VariantRoute("AllTraffic", 1.0, (address,)),), EndpointMetrics())

    async def main() -> None:
        try:
            await router.invoke("e", "image/png", "", png_bytes(0))
        finally:
            await router.close()

    t0 = time.monotonic()
    with pytest.raises(ServiceUnavailableError):
        asyncio.run(main())
    assert time.monotonic() - t0 < 2.0
