"""Hypothesis settings for the fuzz suite: a short, reproducible run in `make test`.

``derandomize`` makes every CI run try the same inputs (a red build always means a regression, never a lucky
draw); ``python -m bench fuzz`` draws fresh inputs for 100,000+ cases. No example database: the suite writes
nothing into the tree. ``TAILOR_FUZZ_EXAMPLES`` raises the per-target count for a longer local run.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

settings.register_profile(
    "tailor-ci",
    max_examples=int(os.environ.get("TAILOR_FUZZ_EXAMPLES", "60")),
    # Generous for a shared 2-core machine; a parser that hangs still fails it by minutes.
    deadline=timedelta(seconds=5),
    derandomize=True,
    database=None,
    print_blob=True,
    # Each example writes its own scratch files; the per-test TAILOR_HOME fixture is not shared state.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("tailor-ci")
