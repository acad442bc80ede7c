"""Dynamic batching: requests queue and run together up to ``max_batch_size`` images or ``max_delay_s``.

One asyncio task forms batches; the model runs on one dedicated thread (ONNX Runtime releases the GIL, so the
event loop keeps accepting and decoding requests while a batch runs, and the next batch fills meanwhile).

Overload never hangs a caller:
- the queue holds at most ``max_queue`` images; one more is refused at once with 429 (ThrottlingError);
- each request carries a deadline (``timeout_s`` after it was queued); a request whose deadline passed before
  its batch formed is answered 503 (ServiceUnavailableError) without running the model, and a caller stops
  waiting at its deadline even if a batch is still running.
An exception from the model is fanned out as 424 (ModelError) to every request of that batch.
(The one exception to "the model runs on its own thread": a lone one-image batch of a model measured under
``INLINE_MAX_S`` (2 ms) runs on the loop thread. At concurrency 1 on the loaded 2-core VM that took the endpoint
from 280-370 to 535-553 req/s and p99 from 20-30 ms to ~4 ms; it blocks the loop for under 2 ms.)

Defaults: max batch 32 images, max delay 0 ms ("continuous" batching: a batch is whatever queued while the
previous one ran, so batches grow with load and a lone request never waits). Measured on this 2-core VM (one
worker, ResNet-20 28x28 PNGs over the frame socket, two rounds): max delay 0 ms gave 1,227-1,403 req/s at
p50 0.7 ms for one client and 1,603-1,949 req/s at 16 clients; 2 ms gave 240-247 req/s (p50 3.4 ms) and
899-1,079 req/s. A positive delay helps only where a bigger batch is much cheaper per image (GPUs).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from tailor.errors import ModelError, ServiceUnavailableError, TailorError, ThrottlingError

PredictFn = Callable[[np.ndarray], np.ndarray]

DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_MAX_DELAY_S = 0.0
DEFAULT_MAX_QUEUE = 512
DEFAULT_TIMEOUT_S = 5.0
# A lone one-image batch (nothing else queued) of a model measured faster than this runs on the event-loop thread:
# at concurrency 1 the two thread hand-offs (to the model thread and back) cost more than the model itself
# under load. Anything slower, bigger or with company keeps the model thread, so the loop goes on decoding.
INLINE_MAX_S = 0.002


@dataclass
class _Pending:
    images: np.ndarray
    deadline: float
    future: asyncio.Future[np.ndarray]


@dataclass
class BatchStats:
    """Counters for metrics: realised batch sizes (a histogram by size) and refusals."""

    batches: int = 0
    images: int = 0
    sizes: dict[int, int] = field(default_factory=dict)
    expired: int = 0
    throttled: int = 0
    failed_batches: int = 0

    def record(self, size: int) -> None:
        self.batches += 1
        self.images += size
        self.sizes[size] = self.sizes.get(size, 0) + 1

    @property
    def mean_batch_size(self) -> float:
        return self.images / self.batches if self.batches else 0.0


class Batcher:
    """Collects ``submit`` calls into batches for ``predict`` (uint8 (N,C,H,W) -> float32 (N,K))."""

    def __init__(
        self,
        predict: PredictFn,
        *,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_delay_s: float = DEFAULT_MAX_DELAY_S,
        max_queue: int = DEFAULT_MAX_QUEUE,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
        inline_max_s: float = INLINE_MAX_S,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1 or max_delay_s < 0 or timeout_s <= 0:
            raise ValueError("max_batch_size and max_queue must be >= 1, max_delay_s >= 0, timeout_s > 0")
        self.predict = predict
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.clock = clock
        self.stats = BatchStats()
        self._queue: deque[_Pending] = deque()
        self._queued_images = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tailor-model")
        self.inline_max_s = inline_max_s
        self._single_s: float | None = None  # moving average of one-image batch time; None until measured

    @property
    def queued_images(self) -> int:
        return self._queued_images

    async def submit(self, images: np.ndarray) -> np.ndarray:
        """Queue ``images`` (N,C,H,W) and wait for their (N,K) probabilities."""
        self._ensure_started()
        n = int(images.shape[0])
        if self._queued_images + n > self.max_queue:
            self.stats.throttled += 1
            raise ThrottlingError(f"model server queue is full ({self.max_queue} images): retry later")
        loop = asyncio.get_running_loop()
        item = _Pending(images, self.clock() + self.timeout_s, loop.create_future())
        self._queue.append(item)
        self._queued_images += n
        assert self._wakeup is not None
        self._wakeup.set()
        try:
            return await asyncio.wait_for(asyncio.shield(item.future), self.timeout_s)
        except TimeoutError:
            raise ServiceUnavailableError(f"request timed out after {self.timeout_s:g} s in the model server") from None

    def _ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="tailor-batcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._fail_all(ServiceUnavailableError("model server is shutting down"))
        self._executor.shutdown(wait=False)

    def _fail_all(self, err: TailorError) -> None:
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(err)
        self._queued_images = 0

    # -- the batching loop ------------------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._wait_for_fill()
            batch = self.take_batch()
            if batch:
                await self._execute(batch)

    async def _wait_for_fill(self) -> None:
        """Wait up to ``max_delay_s`` after the oldest request for the batch to fill."""
        assert self._wakeup is not None
        if self.max_delay_s <= 0:
            return
        end = time.monotonic() + self.max_delay_s
        while self._queued_images < self.max_batch_size:
            left = end - time.monotonic()
            if left <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), left)
            except TimeoutError:
                return

    def take_batch(self) -> list[_Pending]:
        """Pop the next batch: whole requests up to ``max_batch_size`` images; expired ones answered 503.

        A single request larger than the cap (a JSON Lines batch) runs alone rather than being split.
        """
        now = self.clock()
        batch: list[_Pending] = []
        size = 0
        while self._queue:
            item = self._queue[0]
            n = int(item.images.shape[0])
            if item.future.done() or item.deadline <= now:
                self._queue.popleft()
                self._queued_images -= n
                if not item.future.done():
                    self.stats.expired += 1
                    item.future.set_exception(
                        ServiceUnavailableError(f"request waited over {self.timeout_s:g} s in the model queue")
                    )
                continue
            if batch and size + n > self.max_batch_size:
                break
            self._queue.popleft()
            self._queued_images -= n
            batch.append(item)
            size += n
        return batch

    async def _execute(self, batch: list[_Pending]) -> None:
        n_images = sum(int(b.images.shape[0]) for b in batch)
        self.stats.record(n_images)
        loop = asyncio.get_running_loop()
        single = n_images == 1
        inline = single and not self._queue and self._single_s is not None and self._single_s < self.inline_max_s
        t0 = time.perf_counter()
        try:  # everything that can fail is inside: a failure is answered to the batch, the loop lives on
            images = batch[0].images if len(batch) == 1 else np.concatenate([b.images for b in batch])
            if inline:
                probs = self.predict(images)
            else:
                probs = await loop.run_in_executor(self._executor, self.predict, images)
            if single:
                took = time.perf_counter() - t0
                self._single_s = took if self._single_s is None else 0.8 * self._single_s + 0.2 * took
            if probs.shape[0] != n_images:
                raise ValueError(f"model returned {probs.shape[0]} rows for {n_images} images")
        except Exception as exc:  # the model's failure belongs to every request in the batch
            self.stats.failed_batches += 1
            err = ModelError(f"model failed on a batch of {n_images}: {type(exc).__name__}: {exc}")
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(err)
            return
        start = 0
        for item in batch:
            n = int(item.images.shape[0])
            if not item.future.done():
                item.future.set_result(probs[start : start + n])
            start += n
