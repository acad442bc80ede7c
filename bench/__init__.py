"""Benchmarks: each runs its baseline beside Tailor in the same run and prints the ratio."""

from __future__ import annotations

import os


def loadavg() -> str:
    """The 1/5/15-minute load averages, printed beside every figure (other work on the machine skews them)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
