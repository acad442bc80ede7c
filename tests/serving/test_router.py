"""The router on its own: weighted variants, retry past a vanished worker, quick 503, the cached routing table."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from tailor.errors import NotFoundError, ServiceUnavailableError
from tailor.serving import wire
from tailor.serving.metrics import EndpointMetrics
from tailor.serving.router import Router, VariantRoute

from .frames import FrameServer


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(asyncio.wait_for(coro, 30))


class Table:
    """A resolver serving a fixed routing table and counting its calls."""

    def __init__(self, *variants: VariantRoute) -> None:
        self.variants = variants
        self.calls = 0

    def __call__(self, endpoint: str) -> tuple[VariantRoute, ...]:
        self.calls += 1
        if endpoint != "ep":
            raise NotFoundError(f"Endpoint {endpoint!r} does not exist")
        return self.variants


def totals(metrics: EndpointMetrics) -> dict[str, tuple[int, int]]:
    return {variant: (t.invocations, t.errors_5xx) for (_, variant), t in metrics.totals.items()}


def test_traffic_follows_variant_weights(tmp_path: Path) -> None:
    async def main() -> Counter[str]:
        async with FrameServer(tmp_path / "a.sock") as a, FrameServer(tmp_path / "b.sock") as b:
            table = Table(VariantRoute("A", 3.0, (a.path,)), VariantRoute("B", 1.0, (b.path,)))
            router = Router(table, EndpointMetrics())
            seen = Counter()
            for _ in range(400):
                seen[(await router.invoke("ep", "t", "", b"x")).variant] += 1
            await router.close()
            return seen

    seen = run(main())
    assert seen["A"] + seen["B"] == 400 and 0.65 < seen["A"] / 400 < 0.85  # 75 % expected; bounds ~5 sigma


def test_a_zero_weight_variant_gets_traffic_only_when_nothing_else_is_left(tmp_path: Path) -> None:
    async def main() -> tuple[set[str], str]:
        async with FrameServer(tmp_path / "live.sock") as live:
            table = Table(VariantRoute("Main", 1.0, (live.path,)), VariantRoute("Shadow", 0.0, (live.path,)))
            router = Router(table, EndpointMetrics())
            used = {(await router.invoke("ep", "t", "", b"x")).variant for _ in range(20)}
            dead = str(tmp_path / "gone.sock")  # Main's only worker vanished: the shadow variant answers
            router2 = Router(
                Table(VariantRoute("Main", 1.0, (dead,)), VariantRoute("Shadow", 0.0, (live.path,))), EndpointMetrics()
            )
            fallback = (await router2.invoke("ep", "t", "", b"x")).variant
            await router.close()
            await router2.close()
            return used, fallback

    assert run(main()) == ({"Main"}, "Shadow")


def test_a_vanished_worker_is_retried_on_another_and_the_table_reread(tmp_path: Path) -> None:
    async def main() -> None:
        async with FrameServer(tmp_path / "ok.sock") as ok:
            table = Table(VariantRoute("A", 1.0, (str(tmp_path / "gone.sock"), ok.path)))
            metrics = EndpointMetrics()
            router = Router(table, metrics)
            for _ in range(10):
                reply = (await router.invoke("ep", "text/plain", "", b"hello")).reply
                assert (reply.status, reply.body) == (200, b"hello")
            assert table.calls > 1  # each failure invalidated the cached table
            assert totals(metrics) == {"A": (10, 0)}  # a retried request counts once, as a success
            await router.close()

    run(main())


def test_no_worker_left_is_a_quick_503_counted_as_a_5xx(tmp_path: Path) -> None:
    async def main() -> None:
        metrics = EndpointMetrics()
        router = Router(Table(VariantRoute("A", 1.0, (str(tmp_path / "gone.sock"),))), metrics)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(ServiceUnavailableError, match="no model worker"):
            await router.invoke("ep", "t", "", b"x")
        assert loop.time() - t0 < 2.0
        assert totals(metrics) == {"A": (1, 1)}
        with pytest.raises(NotFoundError):
            await router.invoke("other", "t", "", b"x")
        await router.close()

    run(main())


def test_routing_table_is_cached_for_its_ttl_and_dropped_by_invalidate(tmp_path: Path) -> None:
    async def main() -> None:
        async with FrameServer(tmp_path / "w.sock") as w:
            table = Table(VariantRoute("A", 1.0, (w.path,)))
            router = Router(table, EndpointMetrics(), ttl_s=60.0)
            for _ in range(5):
                await router.invoke("ep", "t", "", b"x")
            assert table.calls == 1  # the hot path does no resolving
            router.invalidate("ep")
            await router.invoke("ep", "t", "", b"x")
            assert table.calls == 2
            await router.close()

    run(main())


def test_model_errors_pass_through_with_their_status(tmp_path: Path) -> None:
    async def failing(op: int, ct: str, ac: str, body: bytes) -> wire.Reply:
        return wire.Reply(424, "application/json", b'{"__type": "ModelError", "message": "bad"}')

    async def main() -> None:
        async with FrameServer(tmp_path / "w.sock", failing) as w:
            metrics = EndpointMetrics()
            router = Router(Table(VariantRoute("A", 1.0, (w.path,))), metrics)
            result = await router.invoke("ep", "t", "", b"x")
            assert result.reply.status == 424 and result.variant == "A"
            assert metrics.totals[("ep", "A")].errors_4xx == 1
            await router.close()

    run(main())
