"""Training jobs on Ray (the training half of ``RayBackend``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tailor.backends.base import TrainingProcess
from tailor.backends.local import process_start_time, same_process
from tailor.errors import ServiceUnavailableError


class RayTraining:
    def start_training(self, cmd: list[str], *, cwd: Path, env: Mapping[str, str]) -> tuple[TrainingProcess, int]:
        raise ServiceUnavailableError("training on the ray backend is not built yet")

    def signal_group(self, group: int | None, sig: int) -> None:
        raise ServiceUnavailableError("training on the ray backend is not built yet")

    def end_training(self, pid: int | None, started: float | None, group: int | None) -> None:
        raise ServiceUnavailableError("training on the ray backend is not built yet")

    def same_process(self, pid: int | None, started: float | None) -> bool:
        return same_process(pid, started)  # a Tailor server's own pid (job owners), on this machine

    def start_time(self, pid: int) -> float | None:
        return process_start_time(pid)

    def sampler(self, pid: int) -> Any:
        raise ServiceUnavailableError("training on the ray backend is not built yet")
