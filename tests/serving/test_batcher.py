"""Deterministic batcher tests: the model blocks on events and the clock is fake, so nothing depends on timing."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from tailor.errors import ModelError, ServiceUnavailableError, ThrottlingError
from tailor.serving.batcher import Batcher


class GatedModel:
    """Records batch sizes; the first call blocks until `release` so later requests pile up in the queue."""

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.sizes: list[int] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail_on_call = fail_on_call

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.sizes.append(images.shape[0])
        if len(self.sizes) == 1:
            self.started.set()
            assert self.release.wait(10)
        if self.fail_on_call == len(self.sizes):
            raise RuntimeError("boom")
        # one row per image, identifying it: the image's first pixel in column 0
        return np.stack([images[:, 0, 0, 0].astype(np.float32), np.ones(images.shape[0], np.float32)], axis=1)


def image(value: int, n: int = 1) -> np.ndarray:
    return np.full((n, 1, 2, 2), value, dtype=np.uint8)


async def fill_queue(batcher: Batcher, model: GatedModel, values: list[int]) -> list[asyncio.Task[np.ndarray]]:
    """Start one request, wait until the model holds it, then queue `values` behind it."""
    first = asyncio.ensure_future(batcher.submit(image(0)))
    await asyncio.get_running_loop().run_in_executor(None, model.started.wait, 10)
    tasks = [asyncio.ensure_future(batcher.submit(image(v))) for v in values]
    for _ in range(3):
        await asyncio.sleep(0)  # let each task run up to its await: all are queued now
    return [first, *tasks]


def test_batch_size_cap_and_results_routed_to_their_requests() -> None:
    async def run() -> tuple[list[int], list[np.ndarray], Batcher]:
        model = GatedModel()
        batcher = Batcher(model, max_batch_size=4, max_delay_s=0)
        tasks = await fill_queue(batcher, model, list(range(1, 10)))
        assert batcher.queued_images == 9
        model.release.set()
        results = await asyncio.gather(*tasks)
        await batcher.close()
        return model.sizes, results, batcher

    sizes, results, batcher = asyncio.run(run())
    assert sizes == [1, 4, 4, 1]
    assert [int(r[0, 0]) for r in results] == list(range(10))
    assert batcher.stats.sizes == {1: 2, 4: 2} and batcher.stats.images == 10


def test_multi_image_request_is_never_split() -> None:
    async def run() -> list[int]:
        model = GatedModel()
        batcher = Batcher(model, max_batch_size=4, max_delay_s=0)
        first = asyncio.ensure_future(batcher.submit(image(0)))
        await asyncio.get_running_loop().run_in_executor(None, model.started.wait, 10)
        big = asyncio.ensure_future(batcher.submit(image(7, n=6)))
        small = asyncio.ensure_future(batcher.submit(image(8)))
        await asyncio.sleep(0)
        model.release.set()
        out = await big
        assert out.shape == (6, 2) and (out[:, 0] == 7).all()
        await asyncio.gather(first, small)
        await batcher.close()
        return model.sizes

    assert asyncio.run(run()) == [1, 6, 1]


def test_deadline_expiry_answers_503_without_running_the_model() -> None:
    now = [100.0]

    async def run() -> tuple[list[object], GatedModel, Batcher]:
        model = GatedModel()
        batcher = Batcher(model, max_batch_size=8, max_delay_s=0, timeout_s=5.0, clock=lambda: now[0])
        tasks = await fill_queue(batcher, model, [1, 2, 3])
        now[0] += 5.0  # the queued requests' deadlines pass while the first batch runs
        model.release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await batcher.close()
        return results, model, batcher

    results, model, batcher = asyncio.run(run())
    assert isinstance(results[0], np.ndarray)
    assert all(isinstance(r, ServiceUnavailableError) and r.http_status == 503 for r in results[1:])
    assert model.sizes == [1] and batcher.stats.expired == 3


def test_model_exception_is_fanned_out_to_every_request_of_the_batch() -> None:
    async def run() -> tuple[list[object], GatedModel, Batcher]:
        model = GatedModel(fail_on_call=2)
        batcher = Batcher(model, max_batch_size=8, max_delay_s=0)
        tasks = await fill_queue(batcher, model, [1, 2, 3])
        model.release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        after = await batcher.submit(image(9))  # the batcher survives a failed batch
        await batcher.close()
        assert int(after[0, 0]) == 9
        return results, model, batcher

    results, model, batcher = asyncio.run(run())
    assert isinstance(results[0], np.ndarray)
    errors = results[1:]
    assert all(isinstance(e, ModelError) and e.http_status == 424 and "boom" in str(e) for e in errors)
    assert model.sizes == [1, 3, 1] and batcher.stats.failed_batches == 1


def test_a_batch_that_cannot_be_assembled_is_answered_and_the_batcher_lives_on() -> None:
    """Requests of mismatched shapes fail np.concatenate before the model runs: each still gets its 424 at
    once (not a 503 at its deadline), and the next request is served."""

    async def run() -> tuple[list[object], float, np.ndarray]:
        model = GatedModel()
        batcher = Batcher(model, max_batch_size=8, max_delay_s=0, timeout_s=5)
        first = asyncio.ensure_future(batcher.submit(image(0)))
        await asyncio.get_running_loop().run_in_executor(None, model.started.wait, 10)
        odd = np.zeros((1, 1, 3, 3), np.uint8)  # a different (C,H,W) from image()'s (1,2,2)
        tasks = [asyncio.ensure_future(batcher.submit(image(1))), asyncio.ensure_future(batcher.submit(odd))]
        for _ in range(3):
            await asyncio.sleep(0)
        t0 = time.monotonic()
        model.release.set()
        results = await asyncio.gather(first, *tasks, return_exceptions=True)
        took = time.monotonic() - t0
        after = await batcher.submit(image(7))
        await batcher.close()
        return results, took, after

    results, took, after = asyncio.run(run())
    assert isinstance(results[0], np.ndarray)
    assert all(isinstance(e, ModelError) and e.http_status == 424 for e in results[1:]), results
    assert took < 2.0 and int(after[0, 0]) == 7


def test_full_queue_is_refused_at_once_with_429() -> None:
    async def run() -> None:
        model = GatedModel()
        batcher = Batcher(model, max_batch_size=8, max_delay_s=0, max_queue=2)
        tasks = await fill_queue(batcher, model, [1, 2])
        with pytest.raises(ThrottlingError) as info:
            await batcher.submit(image(3))
        assert info.value.http_status == 429 and batcher.stats.throttled == 1
        model.release.set()
        assert len(await asyncio.gather(*tasks)) == 3
        await batcher.close()

    asyncio.run(run())


def test_max_delay_waits_for_a_fuller_batch() -> None:
    """With a long max delay the batch forms as soon as it is full, not when the delay ends."""

    async def run() -> list[int]:
        model = GatedModel()
        model.started.set()
        model.release.set()
        batcher = Batcher(model, max_batch_size=3, max_delay_s=30.0)
        results = await asyncio.wait_for(asyncio.gather(*(batcher.submit(image(v)) for v in range(3))), 10)
        assert [int(r[0, 0]) for r in results] == [0, 1, 2]
        await batcher.close()
        return model.sizes

    assert asyncio.run(run()) == [3]


def test_lone_single_images_of_a_fast_model_run_on_the_loop_thread_and_batches_keep_the_model_thread() -> None:
    where: list[tuple[int, str]] = []

    def model(images: np.ndarray) -> np.ndarray:
        where.append((int(images.shape[0]), threading.current_thread().name))
        return np.repeat(images.reshape(len(images), -1)[:, :1].astype(np.float32), 3, axis=1)

    async def run() -> list[np.ndarray]:
        batcher = Batcher(model, max_batch_size=8, max_delay_s=0, inline_max_s=10.0)
        out = [await batcher.submit(image(v)) for v in (1, 2, 3)]  # one at a time: a lone image each
        out.append(await batcher.submit(image(4, n=2)))  # two images: the model thread
        await batcher.close()
        return out

    results = asyncio.run(run())
    assert [float(r[0, 0]) for r in results] == [1.0, 2.0, 3.0, 4.0]
    loop_thread = threading.current_thread().name
    assert where[0][1].startswith("tailor-model")  # the first lone image: its speed is not measured yet
    assert where[1:3] == [(1, loop_thread), (1, loop_thread)]
    assert where[3][0] == 2 and where[3][1].startswith("tailor-model")
