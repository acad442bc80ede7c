"""Helpers shared by `tailor train` and `tailor jobs`: the client for --url, rendering, following a job."""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from typing import Any

import click

from tailor.client import Client, TrainingJob
from tailor.settings import Settings

_EPOCH = re.compile(r"Epoch\[(\d+)\]")


def open_client(settings: Settings, url: str | None) -> Client:
    return Client(url=url) if url else Client(settings=settings)


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))


def when(value: Any) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else (value or "-")


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=False))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)) for r in rows]
    return "\n".join(lines)


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


def follow(job: TrainingJob, *, progress: bool = True, poll: float = 0.5) -> dict[str, Any]:
    """Stream the job log to stdout with an epoch progress bar (tqdm on stderr) until the job ends."""
    import time

    from tqdm import tqdm

    desc = job.describe()
    epochs = _int(desc.get("HyperParameters", {}).get("epochs"))
    bar = tqdm(total=epochs, desc=job.name, unit="epoch", file=sys.stderr, disable=not progress, leave=True)
    seen = -1
    pos = 0
    try:
        while True:
            chunk = job.client.training_job_logs(job.name, pos)
            pos = chunk["NextOffset"]
            for line in chunk["Text"].splitlines():
                bar.write(line, file=sys.stdout)
                m = _EPOCH.search(line)
                if m and int(m.group(1)) > seen:
                    bar.update(int(m.group(1)) - seen)
                    seen = int(m.group(1))
            if chunk["Complete"]:
                break
            if not chunk["Text"]:
                time.sleep(poll)
    finally:
        bar.close()
    return job.describe()


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def echo_result(desc: dict[str, Any], as_json: bool) -> None:
    click.echo(to_json(desc) if as_json else summary(desc))
