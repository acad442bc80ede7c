"""`python -m bench soak` through its entry point, for 12 seconds: a real server on loopback trains and deploys a
tiny model, a worker is killed and the server restarted under load, and the summary reports it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_short_soak_survives_kills_and_a_restart() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench", "soak", "--minutes", "0.2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("summary-json: "))
    s = json.loads(line.removeprefix("summary-json: "))
    assert s["ok"] > 0 and s["requests"] >= s["ok"]
    assert s["capacity_rps"] > 0 and s["target_rps"] == pytest.approx(s["capacity_rps"] / 2, rel=0.01)
    assert s["kills"] >= 1 and s["goals"]["chaos_ran"], s
    assert s["goals"]["no_lost_record"] and s["lost_records"] == [], s
    assert s["goals"]["no_5xx_outside_windows"], s["server_errors_outside_windows"]
    life0 = s["rss"]["life0"]
    assert life0["workers"] == [2, 2] and min(life0["server_mb"] + life0["workers_mb"]) > 10, s["rss"]
    assert s["p99_ms"] >= s["p50_ms"] > 0
    assert "verdict: " in out.stdout and "RSS life0: server" in out.stdout
