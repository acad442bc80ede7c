"""Endpoint instances on Ray (the serving half of ``RayBackend``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tailor.backends.base import Handle
from tailor.errors import ServiceUnavailableError


class RayInstances:
    def instance_address(self, instance_id: str) -> str:
        raise ServiceUnavailableError("endpoints on the ray backend are not built yet")

    def start_instance(
        self, instance_id: str, model_dir: str, address: str, log_path: Path, options: Mapping[str, Any]
    ) -> Handle:
        raise ServiceUnavailableError("endpoints on the ray backend are not built yet")

    def wait_ready(self, instance_id: str, address: str, log_path: Path) -> None:
        raise ServiceUnavailableError("endpoints on the ray backend are not built yet")

    def instance_alive(self, instance_id: str, handle: Handle) -> bool:
        raise ServiceUnavailableError("endpoints on the ray backend are not built yet")

    def stop_instance(self, instance_id: str, handle: Handle) -> None:
        raise ServiceUnavailableError("endpoints on the ray backend are not built yet")
