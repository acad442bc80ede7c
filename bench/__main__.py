"""`python -m bench [NAME ...] [OPTIONS]`: run every `bench/bench_*.py` (or the named ones) in turn.

Each module exposes `main(argv: list[str]) -> None` and prints its own table with the baseline beside Tailor.
Leading arguments that name benchmarks pick them; everything after goes to each module as it is, so options
take their values either way (`python -m bench fuzz --cases 1000` or `--cases=1000`).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import bench


def _names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))


def _split(argv: list[str], names: list[str]) -> tuple[list[str], list[str]]:
    wanted: list[str] = []
    for i, arg in enumerate(argv):
        if arg in names or f"bench_{arg}" in names:
            wanted.append(arg)
        else:
            return wanted, argv[i:]
    return wanted, []


def main(argv: list[str]) -> None:
    wanted, options = _split(argv, _names())
    for name in wanted or _names():
        mod_name = name if name.startswith("bench_") else f"bench_{name}"
        print(f"=== {mod_name}", flush=True)
        t0 = time.perf_counter()
        importlib.import_module(f"bench.{mod_name}").main(options)
        print(f"=== {mod_name} done in {time.perf_counter() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
