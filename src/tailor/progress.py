"""One helper for every progress display: a tqdm bar on a terminal, plain periodic lines anywhere else.

A bar redraws itself with carriage returns; written to a pipe, a file or a job log, that is one ever-growing
line. So ``progress_bar`` draws a bar only when its stream is a terminal, and otherwise prints a line such as
``pack fm_train.lst: 21,000/42,000 img (50 %), 3 s`` at most every ``interval`` seconds, plus one at the end.
Both objects offer the same calls: ``update(n)``, ``write(text, file=…)``, ``close()`` and ``with``.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

PLAIN_INTERVAL_S = 10.0  # a line every 10 s: a few per minute-long step, never a flood in a log


def progress_bar(
    total: float | None,
    desc: str,
    *,
    unit: str = "it",
    unit_scale: bool = False,
    file: IO[str] | None = None,
    bar_format: str | None = None,
    leave: bool = False,
    disable: bool = False,
    interval: float = PLAIN_INTERVAL_S,
) -> Any:
    """A progress display on ``file`` (default stderr): tqdm on a terminal, :class:`PlainProgress` otherwise."""
    stream = file or sys.stderr
    if disable or not _is_terminal(stream):
        return PlainProgress(total, desc, unit=unit, unit_scale=unit_scale, file=stream, interval=interval,
                             disable=disable)  # fmt: skip
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, unit=unit, unit_scale=unit_scale, file=stream, bar_format=bar_format,
        dynamic_ncols=True, leave=leave,
    )  # fmt: skip


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class PlainProgress:
    """Whole lines, no carriage returns: the first after ``interval`` seconds, then every ``interval``."""

    def __init__(
        self,
        total: float | None,
        desc: str,
        *,
        unit: str = "it",
        unit_scale: bool = False,
        file: IO[str] | None = None,
        interval: float = PLAIN_INTERVAL_S,
        disable: bool = False,
    ) -> None:
        self.total, self.desc, self.unit, self.unit_scale = total, desc, unit, unit_scale
        self.file = file or sys.stderr
        self.interval, self.disable = interval, disable
        self.n: float = 0
        self._start = self._last = time.monotonic()
        self._closed = False

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._print()

    def write(self, text: str, file: IO[str] | None = None) -> None:
        out = file or self.file
        out.write(text + "\n")
        out.flush()

    def close(self) -> None:
        if not self._closed and self.n:
            self._print()
        self._closed = True

    def line(self) -> str:
        done = _amount(self.n, self.unit, self.unit_scale)
        elapsed = f"{time.monotonic() - self._start:.0f} s"
        if not self.total:
            return f"{self.desc}: {done}, {elapsed}"
        pct = 100.0 * min(self.n / self.total, 1.0)
        return f"{self.desc}: {done} of {_amount(self.total, self.unit, self.unit_scale)} ({pct:.0f} %), {elapsed}"

    def _print(self) -> None:
        if not self.disable:
            self.write(self.line())

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _amount(value: float, unit: str, scale: bool) -> str:
    if scale:
        for prefix in ("", "k", "M", "G", "T"):
            if abs(value) < 1000 or prefix == "T":
                return f"{value:.1f} {prefix}{unit}" if prefix else f"{value:.0f} {unit}"
            value /= 1000
    return f"{value:,.0f} {unit}"
