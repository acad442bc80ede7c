"""Metric definitions (``{Name, Regex}``) applied to each log line, as SageMaker does with CloudWatch logs.

Each regex's first group is the value. The epoch, when the line carries one (``Epoch[3]`` or ``epoch 3``), is
kept beside the value so curves can be plotted per epoch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_EPOCH_RE = re.compile(r"(?:Epoch\[(\d+)\]|\bepoch[ =:]+(\d+))", re.IGNORECASE)


@dataclass(frozen=True)
class MetricPoint:
    name: str
    value: float
    epoch: int | None


class MetricParser:
    def __init__(self, definitions: list[dict[str, str]]) -> None:
        self._defs = [(d["Name"], re.compile(d["Regex"])) for d in definitions]

    def parse(self, line: str) -> list[MetricPoint]:
        points: list[MetricPoint] = []
        for name, regex in self._defs:
            m = regex.search(line)
            if not m:
                continue
            raw = m.group(1) if m.groups() else m.group(0)
            try:
                value = float(raw)
            except (TypeError, ValueError):
                continue  # a regex that matched text that is not a number: SageMaker drops it too
            points.append(MetricPoint(name, value, epoch_of(line)))
        return points


def epoch_of(line: str) -> int | None:
    m = _EPOCH_RE.search(line)
    if not m:
        return None
    return int(m.group(1) or m.group(2))
