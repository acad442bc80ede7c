"""``fork_map``: CPU-bound data work (packing, decoding into the cache, writing image folders) in forked worker
processes, each with its own GIL, with no thread in the parent.

Why not ``multiprocessing.Pool``: its worker-handler thread waits on the result pipe as well as on the workers'
sentinels, so while finished results sit unread it spins. Measured per thread over a 70,000-image re-encoding
pack on 2 cores: that thread took 0.51-0.58 s of CPU (and the result thread 0.17 s) in a 3.8-4.0 s pack, a sixth
of a core taken from the workers. Here the parent only waits on the workers' result pipes (one ``select``) and
hands each worker its next task when a result comes back.

Tasks are the numbers ``0 .. count - 1``; the workers inherit everything else at the fork, so nothing but a
number goes out and the result comes back. A worker keeps two tasks in hand so it never waits for the parent.
An exception in a task is raised in the parent (as a :class:`DataError` with the same one line when it cannot
cross the pipe); a worker that dies is a :class:`DataError`; and when the caller stops early (an error, Ctrl-C,
a closed generator) the workers are terminated and reaped before ``fork_map`` returns.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, Pipe, wait
from typing import Generic, TypeVar

from tailor.errors import DataError

R = TypeVar("R")

_STOPS = {signal.SIGTERM, signal.SIGINT}
_IN_HAND = 2  # tasks a worker holds: one running, one queued, so it never waits on the parent


def fork_map(fn: Callable[[int], R], count: int, workers: int, *, ordered: bool = True) -> Iterator[R]:
    """``fn(i)`` for ``i`` in ``range(count)`` on ``workers`` forked processes; results in task order when
    ``ordered``, else as they finish. One worker or one task runs in-process."""
    if workers <= 1 or count <= 1:
        yield from map(fn, range(count))
        return
    pool: _Workers[R] = _Workers()
    try:
        pool.start(fn, min(workers, count))
        yield from pool.results(count, ordered)
    finally:
        pool.close()


class _Workers(Generic[R]):
    def __init__(self) -> None:
        self.tasks: list[Connection] = []  # parent → worker: a task number, or None to stop
        self.replies: dict[Connection, int] = {}  # worker → parent: results, by worker number
        self.pids: list[int] = []
        self._failed = True  # until every result came back

    def start(self, fn: Callable[[int], R], n: int) -> None:
        """Fork ``n`` workers; if a fork fails, close() still ends the ones already started."""
        for w in range(n):
            task_r, task_w = Pipe(duplex=False)
            res_r, res_w = Pipe(duplex=False)
            # SIGTERM and SIGINT stay blocked across the fork until the worker has reset their handlers: a
            # SIGTERM that reached a new worker before that ran the parent's handler (training's "stop after
            # this batch"), and close() then waited for its tasks to finish (seen: 120 s in a test).
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
            try:
                pid = os.fork()
                if pid == 0:  # the worker: never returns
                    _worker(fn, task_r, res_w, [*self.tasks, *self.replies, task_w, res_r], mask)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            task_r.close()
            res_w.close()
            self.tasks.append(task_w)
            self.replies[res_r] = w
            self.pids.append(pid)

    def results(self, count: int, ordered: bool) -> Iterator[R]:
        sent = 0
        for w in range(len(self.tasks)):
            for _ in range(_IN_HAND):
                if sent < count:
                    self.tasks[w].send(sent)
                    sent += 1
        held: dict[int, R] = {}
        nxt = 0
        while nxt < count:
            for conn in wait(list(self.replies)):
                try:
                    i, ok, value = conn.recv()
                except EOFError:
                    raise DataError("a worker process died (killed, or out of memory)") from None
                if not ok:
                    raise value
                if sent < count:
                    self.tasks[self.replies[conn]].send(sent)
                    sent += 1
                if not ordered:
                    nxt += 1
                    yield value
                    continue
                held[i] = value
                while nxt in held:
                    yield held.pop(nxt)
                    nxt += 1
        self._failed = False

    def close(self) -> None:
        for conn in self.tasks:
            with contextlib.suppress(OSError):  # that worker is gone already
                conn.send(None)
            conn.close()
        if self._failed:  # stopped early: the rest of the work is not wanted
            for pid in self.pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        for pid in self.pids:
            os.waitpid(pid, 0)
        for conn in self.replies:
            conn.close()


def _worker(
    fn: Callable[[int], object], tasks: Connection, results: Connection, others: list[Connection], mask: set[int]
) -> None:
    """A forked worker: run tasks until None or the parent goes away; always ``os._exit`` (never the parent's
    cleanup, atexit or finally blocks)."""
    code = 0
    try:
        # The parent's SIGTERM handler (training's "stop after this batch") would keep a worker alive past
        # close(); Ctrl-C reaches the parent, which ends the workers.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a SIGTERM that came meanwhile ends the worker now
        for conn in others:  # other workers' pipe ends: their EOFs must not wait on this process
            conn.close()
        while (i := tasks.recv()) is not None:
            try:
                msg = (i, True, fn(i))
            except Exception as err:  # noqa: BLE001 - raised again in the parent
                msg = (i, False, _portable(err))
            try:
                results.send(msg)
            except (pickle.PicklingError, TypeError, AttributeError) as err:  # a result that cannot be pickled
                results.send((i, False, DataError(f"task {i}'s result cannot be sent back: {err}")))
    except (EOFError, OSError):
        code = 1  # the parent is gone
    except BaseException:
        code = 2
    finally:
        os._exit(code)


def _portable(err: Exception) -> Exception:
    """The exception if it survives pickling, else a DataError with its one line."""
    try:
        return pickle.loads(pickle.dumps(err))  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - any failure to round-trip means: send the text
        return DataError(f"{type(err).__name__}: {err}")
