"""Helpers shared by `tailor train` and `tailor jobs`: the client for --url, rendering, following a job."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from tailor.cli.root import settings_of
from tailor.client import Client, TrainingJob

if TYPE_CHECKING:
    from tailor.settings import Settings

# An epoch is done when its training ends (its Train-accuracy / Time cost line), not when its first batch logs.
_EPOCH_DONE = re.compile(r"Epoch\[(\d+)\] (?:Train-accuracy|Time cost)=")
# Training seconds so far, as the built-in algorithm logs them (progress lines and each epoch's end).
_TRAIN_SECONDS = re.compile(r"[Tt]rain[-_]seconds=([\d.]+)")
_BUDGET_REACHED = re.compile(r"Time budget of [\d.]+ s reached")


def open_client(settings: Settings, url: str | None) -> Client:
    """The server at --url (else TAILOR_URL / settings.url), or this machine's Tailor home in-process."""
    url = url or settings.url
    return Client(url=url, settings=settings) if url else Client(settings=settings)


def call(ctx: click.Context, url: str | None, fn: Callable[[Client], Any]) -> Any:
    """One SDK call on the client that the command's settings and ``--url`` choose."""
    with open_client(settings_of(ctx), url) as client:
        return fn(client)


def echo_json(data: Any, as_json: bool) -> bool:
    """Print ``data`` as JSON when ``--json`` was given; True then (the command prints nothing else)."""
    if as_json:
        click.echo(to_json(data))
    return as_json


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))


def when(value: Any) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else (value or "-")


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=False))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)) for r in rows]
    return "\n".join(lines)


def print_log(fetch: Callable[[int], dict[str, Any]], offset: int, follow: bool, poll: float = 0.5) -> None:
    """Print a log read by offset (``fetch(offset)`` -> ``{Text, NextOffset, Complete}``) to stdout; with
    ``follow`` keep polling until the reader says Complete (a job ended, an endpoint was deleted)."""
    import time

    pos = offset
    while True:
        chunk = fetch(pos)
        pos = chunk["NextOffset"]
        if chunk["Text"]:
            sys.stdout.write(chunk["Text"])
            sys.stdout.flush()
            continue
        if not follow or chunk["Complete"]:
            return
        time.sleep(poll)


def summary(desc: dict[str, Any]) -> str:
    lines = [
        f"TrainingJobName   {desc['TrainingJobName']}",
        f"Status            {desc['TrainingJobStatus']} ({desc['SecondaryStatus']})",
        f"Created           {when(desc.get('CreationTime'))}",
    ]
    if "TrainingTimeInSeconds" in desc:
        lines.append(f"TrainingTime      {desc['TrainingTimeInSeconds']} s")
    if desc.get("FailureReason"):
        lines.append(f"FailureReason     {desc['FailureReason']}")
    if desc.get("ModelArtifacts"):
        lines.append(f"ModelArtifacts    {desc['ModelArtifacts']['S3ModelArtifacts']}")
    for m in desc.get("FinalMetricDataList", []):
        lines.append(f"  {m['MetricName']:<24} {m['Value']:.6g}")
    last = desc.get("SecondaryStatusTransitions", [])[-1:]
    if last and last[0].get("StatusMessage"):
        lines.append(f"Message           {last[0]['StatusMessage']}")
    return "\n".join(lines)


class Progress:
    """What the follow bar counts: training seconds of the time budget when one is set (the fast profile's
    ``epochs`` is only an upper bound, so ``0/200 epochs`` would be a lie), else epochs done."""

    def __init__(self, hyperparameters: dict[str, Any]) -> None:
        self.budget = _float(hyperparameters.get("time_budget"))
        self.total: float | None = self.budget if self.budget else _int(hyperparameters.get("epochs"))
        self.unit = "s" if self.budget else "epoch"
        self.done = 0.0
        self._epoch = -1

    def advance(self, line: str) -> float:
        """Feed one log line; returns how far the bar moves."""
        before = self.done
        if self.budget:
            if m := _TRAIN_SECONDS.search(line):
                self.done = max(self.done, min(float(m.group(1)), self.budget))
            elif _BUDGET_REACHED.search(line):
                self.done = self.budget
        elif (m := _EPOCH_DONE.search(line)) and int(m.group(1)) > self._epoch:
            self.done += int(m.group(1)) - self._epoch
            self._epoch = int(m.group(1))
        return self.done - before


def follow(job: TrainingJob, *, progress: bool = True, poll: float = 0.5) -> dict[str, Any]:
    """Stream the job log to stdout with a progress display on stderr (tailor.progress: a bar on a terminal,
    periodic lines otherwise) until the job ends: seconds of the time budget, else epochs completed."""
    import time

    from tailor.progress import progress_bar

    desc = job.describe()
    state = Progress(desc.get("HyperParameters", {}))
    fmt = "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of training budget [{elapsed}]"
    bar = progress_bar(
        state.total,
        job.name,
        unit=state.unit,
        file=sys.stderr,
        disable=not progress,
        leave=True,
        bar_format=fmt if state.budget else None,
    )
    pos = 0
    try:
        while True:
            chunk = job.client.training_job_logs(job.name, pos)
            pos = chunk["NextOffset"]
            for line in chunk["Text"].splitlines():
                bar.write(line, file=sys.stdout)
                if step := state.advance(line):
                    bar.update(step)
            if chunk["Complete"]:
                break
            if not chunk["Text"]:
                time.sleep(poll)
    finally:
        bar.close()
    return job.describe()


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def echo_result(desc: dict[str, Any], as_json: bool) -> None:
    click.echo(to_json(desc) if as_json else summary(desc))
