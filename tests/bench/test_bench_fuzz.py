"""`python -m bench fuzz` through its entry point: every target runs and the table adds up."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.fuzz.targets import TARGETS

pytestmark = pytest.mark.slow  # a bench run


def test_bench_fuzz_runs_every_target_and_counts() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench", "fuzz", "--cases", str(2 * len(TARGETS)), "--seed", "7"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = {
        name: (cases, uncaught)
        for name, cases, uncaught in re.findall(r"^(\S+)\s+([\d,]+)\s+(\d+)\s+\d+", out.stdout, re.M)
    }
    assert set(rows) == {t.name for t in TARGETS} | {"total"}, out.stdout
    assert all(rows[t.name] == ("2", "0") for t in TARGETS), rows
    assert rows["total"] == (str(2 * len(TARGETS)), "0"), out.stdout
    assert "load average after:" in out.stdout
