"""The job log: one append-only UTF-8 file per job (``<jobs_dir>/<name>/training.log``), read by byte offset.

Offsets let any reader (SDK, REST ``?offset=``, ``tailor jobs logs -f``) resume where it stopped without the
server keeping per-reader state.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tailor.localfiles import open_regular
from tailor.storage import join_uri

LOG_NAME = "training.log"
# One read returns at most this much; followers simply ask again from next_offset.
MAX_CHUNK = 1 << 20


@dataclass(frozen=True)
class LogChunk:
    text: str
    next_offset: int


def read_log(path: Path, offset: int = 0, limit: int = MAX_CHUNK) -> LogChunk:
    """Bytes [offset, offset+limit) of the log, cut back to the last full line so UTF-8 is never split."""
    fh = open_regular(path)
    if fh is None:
        return LogChunk("", offset)
    with fh:
        fh.seek(max(0, offset))
        data = fh.read(max(0, min(limit, MAX_CHUNK)))
    return log_chunk(data, offset, limit)


def log_chunk(data: bytes, offset: int, limit: int) -> LogChunk:
    """A chunk from ``data``, the log's bytes read from ``offset`` (at most ``limit``, as ``read_log`` reads them
    from a file and the shared store's copy from a ranged GET): ends at a line end when it filled the limit."""
    if len(data) == limit and b"\n" in data:
        data = data[: data.rindex(b"\n") + 1]
    return LogChunk(data.decode("utf-8", errors="replace"), max(0, offset) + len(data))


def shipped_log_uri(output_path: str, job: str) -> str:
    """Where a job's log is copied in the shared object store, beside its output, for servers on other
    machines (several servers on one PostgreSQL database and one S3 store)."""
    return join_uri(output_path, job, "logs", LOG_NAME)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of the log (for a FailureReason when the algorithm wrote no output/failure)."""
    fh = open_regular(path)
    if fh is None:
        return ""
    with fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - 16384))
        data = fh.read().decode("utf-8", errors="replace")
    return "\n".join(data.splitlines()[-lines:])


class LogWriter:
    """Appends lines to the job log; shared by the runner's own messages and the algorithm's output."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            self._fh.write(line if line.endswith("\n") else line + "\n")

    def system(self, message: str) -> None:
        """A line from Tailor itself, marked so readers can tell it from the algorithm's output."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.write(f"[tailor {stamp}] {message}")

    def close(self) -> None:
        with self._lock:
            self._fh.close()
