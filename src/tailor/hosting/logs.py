"""Endpoint runtime logs: one bounded log per endpoint, read by offset (``tailor endpoints logs NAME -f``).

``$TAILOR_HOME/endpoints/<endpoint>/endpoint.log`` gathers, one timestamped line each:

- what Tailor does to the endpoint: create, update (traffic switch, instance counts), delete, each worker's
  start (pid), readiness (seconds from start to answering /ping), stop, and a crash with its reason (exit code
  or signal, the worker's last line) and the restart that follows;
- what the workers print (``worker-<id>.log``, their stdout and stderr, e.g. "model loaded in 0.41 s" or an
  invocation's traceback), copied in by ``collect`` under ``worker <id>:``;
- invocations that failed, with the request id the caller got in ``x-amzn-RequestId``.

Bounded: past ``MAX_SEGMENT_BYTES`` (4 MiB) the log rotates to ``endpoint.log.1`` (the previous ``.1`` is
dropped), so an endpoint keeps at most 8 MiB; a worker's own file is truncated once it passed
``MAX_WORKER_BYTES`` (1 MiB) and was copied. Failed invocations are logged at most ``ERRORS_PER_S`` (20) per
second per endpoint; the rest are counted in one line. Offsets are logical (bytes ever written), so a reader
resumes across rotations; one that fell more than a rotation behind is told how much it missed.

Free of secrets: lines never hold request bodies or headers; the home path becomes ``$TAILOR_HOME`` and
bearer tokens, SigV4 credentials/signatures and ``secret=…``-style values are masked (``scrub``).
Every writer (the server, an in-process CLI) appends under an exclusive ``flock``, so processes never interleave
half lines or rotate under each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from tailor.localfiles import open_regular
from tailor.resources import NAME_RE, check_name
from tailor.settings import Settings

LOG_NAME = "endpoint.log"
MAX_SEGMENT_BYTES = 4 << 20
MAX_WORKER_BYTES = 1 << 20
MAX_CHUNK = 1 << 20  # one read returns at most this much; followers ask again from NextOffset
MAX_LINE_CHARS = 4000  # a longer line (a huge exception message) is cut
ERRORS_PER_S = 20
_SECRETS = (
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1***"),
    (re.compile(r"(?i)(credential=)[^,\s]+"), r"\1***"),
    (re.compile(r"(?i)(signature=)[0-9a-f]+"), r"\1***"),
    (
        re.compile(r"(?i)((?:secret|password|passwd|token|api[_-]?key)[\w-]*[\"']?\s*[=:]\s*[\"']?)[^\s\"',;]+"),
        r"\1***",
    ),
)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class EndpointLogs:
    """Write, collect and read every endpoint's runtime log (thread- and process-safe)."""

    def __init__(self, settings: Settings) -> None:
        self.root = settings.home / "endpoints"
        self._home = str(settings.home)
        self._errors: dict[str, tuple[int, int, int]] = {}  # endpoint -> (second, logged, suppressed)
        self._lock = threading.Lock()

    # -- paths --------------------------------------------------------------------------------------------
    def directory(self, endpoint: str) -> Path:
        """The endpoint's folder; a name that is not a valid endpoint name (``..``) never reaches the disk."""
        return self.root / check_name("EndpointName", endpoint)

    def path(self, endpoint: str) -> Path:
        return self.directory(endpoint) / LOG_NAME

    def worker_path(self, endpoint: str, worker_id: str) -> Path:
        """Where a worker's stdout/stderr go (the backend appends to it)."""
        return self.directory(endpoint) / f"worker-{worker_id}.log"

    def exists(self, endpoint: str) -> bool:
        return self.path(endpoint).is_file()

    # -- writing ------------------------------------------------------------------------------------------
    def scrub(self, text: str) -> str:
        text = text.replace(self._home, "$TAILOR_HOME")
        for pattern, repl in _SECRETS:
            text = pattern.sub(repl, text)
        return text

    def event(self, endpoint: str, message: str) -> None:
        """One line from Tailor itself about ``endpoint``."""
        self._append(endpoint, [f"{_stamp()} tailor: {message}"])

    def invocation_error(
        self, endpoint: str, request_id: str, status: int, code: str, message: str, variant: str = ""
    ) -> None:
        """A failed invocation; at most ``ERRORS_PER_S`` lines a second per endpoint, the rest counted. Only
        for an endpoint that has a log already (created through Tailor), so a caller's made-up name makes
        no directory."""
        if not NAME_RE.match(endpoint) or not self.directory(endpoint).is_dir():
            return
        now = int(time.time())
        with self._lock:
            second, logged, suppressed = self._errors.get(endpoint, (now, 0, 0))
            lines = []
            if second != now:
                if suppressed:
                    lines.append(f"{_stamp()} tailor: {suppressed} more failed invocations not logged (rate limit)")
                second, logged, suppressed = now, 0, 0
            if logged >= ERRORS_PER_S:
                self._errors[endpoint] = (second, logged, suppressed + 1)
                if not lines:
                    return
            else:
                on = f" on variant {variant}" if variant else ""
                lines.append(f"{_stamp()} tailor: invocation {request_id} failed{on}: {status} {code}: {message}")
                self._errors[endpoint] = (second, logged + 1, suppressed)
        self._append(endpoint, lines)

    def _append(self, endpoint: str, lines: list[str]) -> None:
        if not lines:
            return
        data = "".join(self.scrub(line)[:MAX_LINE_CHARS].rstrip("\n") + "\n" for line in lines).encode()
        with self._locked(endpoint):
            self._write(endpoint, data)

    @contextlib.contextmanager
    def _locked(self, endpoint: str) -> Iterator[None]:
        d = self.directory(endpoint)
        d.mkdir(parents=True, exist_ok=True)
        with self._lock, open(d / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _write(self, endpoint: str, data: bytes) -> None:
        """Append (the lock held); rotate first when the current segment would pass the cap."""
        path = self.path(endpoint)
        size = path.stat().st_size if path.exists() else 0
        if size and size + len(data) > MAX_SEGMENT_BYTES:
            base = self._base(endpoint)
            os.replace(path, path.with_name(LOG_NAME + ".1"))
            self._set_base(endpoint, base + size)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def _base(self, endpoint: str) -> int:
        """The logical offset at which the current segment starts."""
        try:
            return int((self.directory(endpoint) / "endpoint.base").read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _set_base(self, endpoint: str, base: int) -> None:
        tmp = self.directory(endpoint) / ".endpoint.base.tmp"
        tmp.write_text(str(base))
        os.replace(tmp, self.directory(endpoint) / "endpoint.base")

    # -- workers' own output ------------------------------------------------------------------------------
    def collect(self, endpoint: str, worker_ids: Iterable[str]) -> None:
        """Copy what each worker printed since the last copy into the endpoint log (whole lines only), and
        truncate a worker file past ``MAX_WORKER_BYTES`` once copied. The copied size is kept beside the file,
        so any process may collect without copying a line twice. A line a worker writes in the instant between
        the last copy and a truncation can be lost; workers print little (start, errors), so that is rare."""
        for wid in worker_ids:
            src = self.worker_path(endpoint, wid)
            if not src.is_file():
                continue
            with self._locked(endpoint):
                self._collect_one(endpoint, wid, src)

    def _collect_one(self, endpoint: str, wid: str, src: Path) -> None:
        mark = src.with_name(src.name + ".copied")
        try:
            done = int(mark.read_text() or 0)
        except (OSError, ValueError):
            done = 0
        fh = open_regular(src)
        if fh is None:
            return
        with fh:
            size = os.fstat(fh.fileno()).st_size
            if size < done:  # truncated (or replaced) meanwhile: start over
                done = 0
            fh.seek(done)
            data = fh.read(min(size - done, MAX_CHUNK))
        if b"\n" in data:
            data = data[: data.rindex(b"\n") + 1]
        elif len(data) < MAX_CHUNK:
            data = b""  # a partial line: wait for its end
        if data:
            stamp = _stamp()
            lines = data.decode("utf-8", "replace").splitlines()
            text = "".join(
                self.scrub(f"{stamp} worker {wid[:8]}: {line}")[:MAX_LINE_CHARS] + "\n"
                for line in lines
                if line.strip()
            )
            self._write(endpoint, text.encode())
            done += len(data)
        if done >= MAX_WORKER_BYTES and done == size:
            os.truncate(src, 0)
            done = 0
        mark.write_text(str(done))

    def forget_worker(self, endpoint: str, worker_id: str) -> None:
        """After a worker stopped for good (and was collected): remove its own file."""
        src = self.worker_path(endpoint, worker_id)
        for p in (src, src.with_name(src.name + ".copied")):
            p.unlink(missing_ok=True)

    # -- reading ------------------------------------------------------------------------------------------
    def read(self, endpoint: str, offset: int = 0, limit: int = MAX_CHUNK) -> dict[str, object]:
        """``{Text, NextOffset}``: the log from logical byte ``offset``, whole lines, at most ``limit`` bytes.
        An offset that rotated away resumes at the oldest line kept, after a line saying how much was lost."""
        limit = max(1, min(limit, MAX_CHUNK))
        offset = max(0, offset)
        for _ in range(3):  # a rotation between reading the base and the file: read again
            base = self._base(endpoint)
            text, nxt = self._read_at(endpoint, base, offset, limit)
            if self._base(endpoint) == base:
                return {"Text": text, "NextOffset": nxt}
        return {"Text": "", "NextOffset": offset}

    def _read_at(self, endpoint: str, base: int, offset: int, limit: int) -> tuple[str, int]:
        path = self.path(endpoint)
        note = ""
        if offset < base:
            old = path.with_name(LOG_NAME + ".1")
            old_size = old.stat().st_size if old.is_file() else 0
            old_base = base - old_size
            if offset < old_base:
                note = f"[{old_base - offset} bytes of older log lines were rotated away]\n"
                offset = old_base
            if offset < base:
                data = _read(old, offset - old_base, limit)
                return note + data.decode("utf-8", "replace"), offset + len(data)
        data = _read(path, offset - base, limit)
        size = path.stat().st_size if path.is_file() else 0
        if offset - base > size:  # past the end (a log that was removed and begun again): resume at its end
            return note, base + size
        return note + data.decode("utf-8", "replace"), offset + len(data)


def _read(path: Path, pos: int, limit: int) -> bytes:
    """Bytes [pos, pos+limit) cut back to the last full line (a partial last line waits for its end)."""
    fh = open_regular(path)
    if fh is None:
        return b""
    with fh:
        fh.seek(max(0, pos))
        data = fh.read(limit)
    if b"\n" not in data:
        return data if len(data) == limit else b""
    return data[: data.rindex(b"\n") + 1]
