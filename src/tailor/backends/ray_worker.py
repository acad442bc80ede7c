"""One training instance on a Ray node: the actor that stages a job dir there and runs the algorithm in it.

The driver (``ray_driver``) places one ``TrainingWorker`` per instance in the job's placement group. Each builds
the training contract on its own node, under ``<node temp>/tailor-ray-<uid>/jobs/<job>/algo-<n>/`` (a remote node
sees nothing of the server's home): ``input/config/*.json`` as the server wrote them, with ``resourceconfig.json``
naming this instance (``current_host`` algo-<n>), every channel downloaded from S3 with the storage settings the
driver passed, and the newest checkpoints from the job's checkpoint prefix. It then runs the instance's command
(the server's, its paths moved to this node) as a subprocess in its own process group, with the torch.distributed
variables of its rank, so the algorithm joins the group exactly as under torchrun and keeps its own SIGTERM
handling. The subprocess dies with the actor (PR_SET_PDEATHSIG), so a killed actor leaves nothing behind.

Rank 0 copies ``checkpoints/`` to S3 every ``CHECKPOINT_SYNC_S`` while the algorithm runs and once after it ends,
so a restart on another node resumes from the last finished epoch; it also hands the model and output files to
the driver, which writes them into the server's job dir (the runner then uploads the artifact as it does on the
local backend).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tailor.backends.local import ResourceSampler
from tailor.errors import NotFoundError
from tailor.settings import load_settings
from tailor.storage import Storage, join_uri, relative_key

CHECKPOINT_SYNC_S = 0.5  # a directory listing of a few files: a lost node takes at most 0.5 s of checkpoints
SAMPLE_S = 1.0  # the algorithm's processes are sampled (psutil, ~1 ms) at most this often, on the driver's poll
SAMPLES_FILE = "instance-resources.json"  # in the server's job dir: the driver's sum over instances, for the runner
_PR_SET_PDEATHSIG = 1


def node_root() -> Path:
    """This node's scratch root for Tailor's training instances (the decoded-image cache is shared by jobs)."""
    root = Path(tempfile.gettempdir()) / f"tailor-ray-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    return root


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class TrainingWorker:
    """A Ray actor (the driver wraps it with ``ray.remote``): start, poll, signal, collect, cleanup."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: list[tuple[str, str]] = []  # ("sys" | "out", text)
        self._proc: subprocess.Popen[bytes] | None = None
        self._rc: int | None = None
        self._ended: float | None = None
        self._done = False
        self._failure: str | None = None
        self._dir: Path | None = None
        self._server_dir = ""
        self._sampler: ResourceSampler | None = None
        self._sample: dict[str, Any] | None = None
        self._sampled_at = 0.0

    # -- where it runs ---------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        import ray

        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "ip": ray.util.get_node_ip_address(),
            "hostname": socket.gethostname(),
        }

    def free_port(self) -> int:
        """A port free on this node now, for the rendezvous (rank 0's node is MASTER_ADDR)."""
        with socket.socket() as s:
            s.bind(("", 0))
            return int(s.getsockname()[1])

    # -- the instance ----------------------------------------------------------------------------------
    def start(self, task: dict[str, Any]) -> None:
        threading.Thread(target=self._run, args=(task,), name="instance", daemon=True).start()

    def poll(self, cursor: int) -> dict[str, Any]:
        sample = self._resources()
        with self._lock:
            return {
                "lines": self._lines[cursor:],
                "done": self._done,
                "rc": self._rc,
                "ended": self._ended,
                "failure": self._failure,
                "sample": sample,
            }

    def _resources(self) -> dict[str, Any] | None:
        """CPU, memory and GPU of the algorithm's process tree on this node (as the local backend samples it)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return None
        now = time.monotonic()
        if now - self._sampled_at >= SAMPLE_S:
            if self._sampler is None:
                self._sampler = ResourceSampler(proc.pid)
            self._sample, self._sampled_at = self._sampler.sample(), now
        return self._sample

    def signal(self, sig: int) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)

    def collect(self) -> dict[str, bytes]:
        """Rank 0's model files and outputs, relative to the job dir (the driver writes them on the server)."""
        assert self._dir is not None
        out: dict[str, bytes] = {}
        for sub in ("model", "output"):
            for f in sorted((self._dir / sub).rglob("*")):
                if f.is_file() and not f.is_symlink() and f.name != "failure":
                    out[f.relative_to(self._dir).as_posix()] = f.read_bytes()
        return out

    def cleanup(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            with contextlib.suppress(OSError):  # the job's folder, once its last instance on this node is gone
                self._dir.parent.rmdir()

    # -- the body --------------------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        with self._lock:
            self._lines.append(("sys", text))

    def _run(self, task: dict[str, Any]) -> None:
        rc = 1
        storage: Storage | None = None
        try:
            storage = Storage(load_settings(home=str(node_root() / "home"), **task["storage"]))
            job = self._prepare(task, storage)
            rc = self._launch(task, job, storage)
        except Exception as err:  # staging or starting failed: the job fails with this line, never hangs
            self._failure = f"instance {task['host']} could not start: {type(err).__name__}: {err}"
            self._say(self._failure)
        finally:
            with self._lock:
                self._rc, self._ended, self._done = rc, time.time(), True

    def _prepare(self, task: dict[str, Any], storage: Storage) -> Path:
        root = node_root()
        job = root / "jobs" / task["job_name"] / task["host"]
        shutil.rmtree(job, ignore_errors=True)
        for sub in ("input/config", "input/data", "model", "output/data", "checkpoints"):
            (job / sub).mkdir(parents=True, exist_ok=True)
        self._dir, self._server_dir = job, task["server_dir"]
        for name, text in task["config"].items():
            (job / "input" / "config" / name).write_text(text)
        for channel, uri in task["channels"].items():
            count, size = self._download(storage, uri, job / "input" / "data" / channel)
            self._say(f"staged channel {channel!r}: {count} objects, {size / 1e6:.1f} MB from {uri}")
        try:
            count, _ = self._download(storage, task["checkpoint_uri"], job / "checkpoints")
        except NotFoundError:  # no bucket yet: nothing to resume from
            count = 0
        if count:
            self._say(f"restored {count} checkpoint files from {task['checkpoint_uri']}")
        return job

    def _download(self, storage: Storage, uri: str, dest_root: Path) -> tuple[int, int]:
        objects = storage.list(uri)
        for obj in objects:
            dest = (dest_root / relative_key(uri, obj.key, obj.uri)).resolve()
            if dest_root.resolve() not in dest.parents:
                raise ValueError(f"object {obj.uri} would land outside {dest_root.name}/")
            storage.download_file(obj.uri, dest)
        return len(objects), sum(o.size for o in objects)

    def _launch(self, task: dict[str, Any], job: Path, storage: Storage) -> int:
        cmd = [self._here(a, task, job) for a in task["cmd"]]
        if cmd and cmd[0] == task["server_python"]:
            cmd[0] = sys.executable  # the same environment, wherever this node installed it
        env = {k: self._here(v, task, job) for k, v in task["env"].items()}
        env.update(task["dist_env"])
        if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:  # the GPUs Ray gave this actor
            env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
        self._proc = proc = subprocess.Popen(
            cmd,
            cwd=job,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, async-signal-safe
        )
        syncer = None
        if task["rank"] == 0:
            syncer = _CheckpointSync(storage, job / "checkpoints", task["checkpoint_uri"], proc)
            syncer.start()
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            with self._lock:
                self._lines.append(("out", raw.decode("utf-8", errors="replace").rstrip("\r\n")))
        rc = proc.wait()
        if syncer is not None:
            syncer.join()
        failure = job / "output" / "failure"
        if rc != 0 and failure.is_file():
            self._failure = failure.read_text(errors="replace").strip().replace(str(job), self._server_dir)
        return rc

    @staticmethod
    def _here(value: str, task: dict[str, Any], job: Path) -> str:
        """A path of the server's job dir or home, moved to this node's."""
        value = value.replace(task["server_dir"], str(job))
        return value.replace(task["server_home"], str(node_root() / "home"))


class _CheckpointSync(threading.Thread):
    """Copies new or changed checkpoint files to S3 while the algorithm runs, and once more after it ended.

    Each checkpoint is a ``.safetensors`` + ``.json`` pair whose ``.json`` is written last; uploading tensors
    before their ``.json`` keeps that order in S3, so a restart never sees a ``.json`` without its tensors.
    """

    def __init__(self, storage: Storage, local: Path, uri: str, proc: subprocess.Popen[bytes]) -> None:
        super().__init__(name="checkpoint-sync", daemon=True)
        self.storage, self.local, self.uri, self.proc = storage, local, uri, proc
        self.sent: dict[str, tuple[int, int]] = {}

    def run(self) -> None:
        while self.proc.poll() is None:
            time.sleep(CHECKPOINT_SYNC_S)
            self.sync()
        self.sync()

    def sync(self) -> None:
        files = [p for p in self.local.rglob("*") if p.is_file() and not p.name.endswith(".tmp")]
        for f in sorted(files, key=lambda p: (p.suffix == ".json", p.name)):
            st = f.stat()
            rel = f.relative_to(self.local).as_posix()
            if self.sent.get(rel) == (st.st_size, st.st_mtime_ns):
                continue
            with contextlib.suppress(OSError):  # replaced mid-read: the next round sends the new one
                self.storage.upload_file(f, join_uri(self.uri, rel))
                self.sent[rel] = (st.st_size, st.st_mtime_ns)
