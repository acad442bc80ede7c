"""tailor.data.forked: results in order or as they finish, errors raised in the parent, workers always reaped."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from tailor.data.forked import fork_map
from tailor.errors import DataError


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_results_come_back_in_task_order_from_several_processes() -> None:
    threads = threading.active_count()
    seen_threads: list[int] = []

    def work(i: int) -> tuple[int, int]:
        time.sleep(0.002 * (i % 3))  # finish out of order
        return i * i, os.getpid()

    out = []
    for value in fork_map(work, 40, 2):
        seen_threads.append(threading.active_count())
        out.append(value)
    assert [v for v, _ in out] == [i * i for i in range(40)]
    pids = {pid for _, pid in out}
    assert len(pids) == 2 and os.getpid() not in pids
    assert set(seen_threads) == {threads}  # the parent runs no helper thread
    assert all(_gone(pid) for pid in pids)


def test_unordered_yields_every_result_once() -> None:
    out = list(fork_map(lambda i: i, 25, 3, ordered=False))
    assert sorted(out) == list(range(25))


def test_one_worker_or_one_task_runs_in_process() -> None:
    assert list(fork_map(lambda i: os.getpid(), 3, 1)) == [os.getpid()] * 3
    assert list(fork_map(lambda i: os.getpid(), 1, 4)) == [os.getpid()]


def test_a_task_error_is_raised_in_the_parent_and_the_workers_are_reaped() -> None:
    pids: list[int] = []

    def work(i: int) -> int:
        if i == 5:
            raise ValueError(f"bad task {i}")
        return os.getpid()

    with pytest.raises(ValueError, match="bad task 5"):
        for pid in fork_map(work, 20, 2):
            pids.append(pid)
    assert pids and all(_gone(pid) for pid in set(pids))


class _Unpicklable(Exception):
    def __init__(self, a: int, b: int) -> None:  # pickle re-creates it with one argument: fails
        super().__init__(f"needs {a} and {b}")


def test_an_error_that_cannot_cross_the_pipe_comes_back_as_its_one_line() -> None:
    def work(i: int) -> int:
        raise _Unpicklable(1, 2)

    with pytest.raises(DataError, match=r"_Unpicklable: needs 1 and 2"):
        list(fork_map(work, 4, 2))


def test_a_worker_that_dies_is_a_data_error() -> None:
    def work(i: int) -> int:
        if i == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return i

    with pytest.raises(DataError, match="worker process died"):
        list(fork_map(work, 10, 2))


def test_stopping_early_terminates_workers_busy_with_long_tasks() -> None:
    def work(i: int) -> int:
        if i > 1:
            time.sleep(60)
        return os.getpid()

    results = fork_map(work, 10, 2)
    first = next(results)
    started = time.monotonic()
    results.close()
    assert time.monotonic() - started < 10
    assert _gone(first)


def test_a_result_that_cannot_be_pickled_is_a_data_error_not_a_dead_worker() -> None:
    with pytest.raises(DataError, match="task 2's result cannot be sent back"):
        list(fork_map(lambda i: (lambda: i) if i == 2 else i, 5, 2))


def test_a_failed_fork_still_ends_the_workers_already_started(monkeypatch: pytest.MonkeyPatch) -> None:
    real_fork = os.fork
    started: list[int] = []

    def fork_once() -> int:
        if started:
            raise OSError("fork failed")
        pid = real_fork()
        if pid:
            started.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork_once)
    with pytest.raises(OSError, match="fork failed"):
        list(fork_map(lambda i: i, 6, 3))
    assert len(started) == 1 and _gone(started[0])


def test_a_sigterm_before_the_worker_resets_its_handlers_still_ends_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent may handle SIGTERM itself (training: "stop after this batch"). A worker killed before it reset
    that handler must die, not run the parent's handler and go on with a long task (close() then waited on it)."""
    from tailor.data import forked

    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    real_signal = signal.signal

    def slow_reset(sig: int, handler: object) -> object:
        time.sleep(0.5)  # in the worker: the SIGTERM below lands in this window
        return real_signal(sig, handler)  # type: ignore[arg-type]

    try:
        monkeypatch.setattr(signal, "signal", slow_reset)
        pool: forked._Workers[int] = forked._Workers()
        pool.start(lambda i: time.sleep(60) or i, 1)
        pool.tasks[0].send(0)
        started = time.monotonic()
        pool.close()  # SIGTERM at once, then wait
        assert time.monotonic() - started < 10 and _gone(pool.pids[0])
    finally:
        monkeypatch.undo()
        signal.signal(signal.SIGTERM, previous)
