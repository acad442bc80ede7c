"""The backend protocol: what a place that runs Tailor's processes must offer (see ``tailor.backends``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol


@dataclass(frozen=True)
class TrainingInputs:
    """What a backend whose instances run on other machines needs beyond the command: where each instance reads
    its channels and checkpoints from and what it asks the cluster for (the local backend ignores it)."""

    job_name: str
    channels: dict[str, str]  # channel name -> S3 URI
    checkpoint_uri: str  # CheckpointConfig.S3Uri, or a prefix under the job's output path
    instance_type: str
    instance_count: int


@dataclass(frozen=True)
class Handle:
    """How a backend finds a started process again: its pid and start time (PIDs get recycled)."""

    pid: int | None
    started: float | None


class TrainingProcess(Protocol):
    """A running training command, as the job runner sees it (``subprocess.Popen``'s shape)."""

    pid: int
    stdout: IO[bytes] | None
    returncode: int | None

    def poll(self) -> int | None: ...


class Backend(Protocol):
    name: str
    # True when training instances run on other machines: they read channels and checkpoints from storage
    # themselves, so the runner stages nothing into the job dir and does not sandbox the command here.
    remote: bool

    # -- training jobs ----------------------------------------------------------------------------------
    def check_training(self, *, instance_type: str, instance_count: int, own_code: bool) -> None:
        """Refuse at CreateTrainingJob, with one line, a job this backend cannot run."""

    def start_training(
        self, cmd: list[str], *, cwd: Path, env: Mapping[str, str], inputs: TrainingInputs | None = None
    ) -> tuple[TrainingProcess, int]:
        """Start ``cmd`` in its own process group; (process, group id). OSError when it cannot start."""

    def status_change(self, line: str) -> tuple[str, str] | None:
        """(SecondaryStatus, message) when a line of the training output reports one (a restart), else None."""

    def signal_group(self, group: int | None, sig: int) -> None:
        """Send ``sig`` to every process of a training job's group (never to Tailor's own)."""

    def end_training(self, pid: int | None, started: float | None, group: int | None) -> None:
        """Kill a training job's processes left by an earlier server (if ``pid`` is still that process) and
        wait until they are gone."""

    def same_process(self, pid: int | None, started: float | None) -> bool:
        """True while ``pid`` is still the process that started at ``started``."""

    def start_time(self, pid: int) -> float | None:
        """When ``pid`` started (to recognise it later), None when it is gone."""

    def sampler(self, pid: int) -> Any:
        """A resource sampler for the process tree of ``pid`` (``sample()`` -> dict or None when gone)."""

    # -- endpoint instances -----------------------------------------------------------------------------
    # True when instances outlive the server that started them (Ray's detached actors): its shutdown leaves
    # them serving and the next server finds them again; False when they end with it (local children).
    detached_instances: bool

    def instance_address(self, instance_id: str) -> str:
        """Where the instance will serve the wire protocol (a Unix socket path for local processes), or a
        placeholder when the address is known only once it runs (then ``wait_ready`` returns it)."""

    def start_instance(
        self, instance_id: str, model_dir: str, address: str, log_path: Path, options: Mapping[str, Any]
    ) -> Handle:
        """Start one model worker for ``model_dir`` serving at ``address``; returns at once."""

    def wait_ready(self, instance_id: str, address: str, log_path: Path) -> str | None:
        """Block until the instance answers /ping; ServiceUnavailableError (with its last log line) if it cannot.
        Returns the address it serves at when that differs from ``address`` (hosting stores it), else None.
        ``options`` of ``start_instance`` carry ``model_data_url`` and ``instance_type`` for remote backends."""

    def instance_alive(self, instance_id: str, handle: Handle) -> bool:
        """True while the instance runs (an exited child of ours counts as dead at once)."""

    def stop_instance(self, instance_id: str, handle: Handle) -> None:
        """Stop gracefully (in-flight requests finish), forcefully after a timeout; no error if already gone."""
