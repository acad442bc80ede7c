"""`python -m bench [NAME ...]`: run every `bench/bench_*.py` (or the named ones) in turn.

Each module exposes `main(argv: list[str]) -> None` and prints its own table with the baseline beside Tailor.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import bench


def _names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))


def main(argv: list[str]) -> None:
    wanted = [a for a in argv if not a.startswith("-")] or _names()
    for name in wanted:
        mod_name = name if name.startswith("bench_") else f"bench_{name}"
        print(f"=== {mod_name}", flush=True)
        t0 = time.perf_counter()
        importlib.import_module(f"bench.{mod_name}").main([a for a in argv if a.startswith("-")])
        print(f"=== {mod_name} done in {time.perf_counter() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
