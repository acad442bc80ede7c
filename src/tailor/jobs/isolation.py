"""What a training process can reach: its own uid, a scrubbed environment, its job dir only.

When the server runs as root every training process starts through ``sandbox.py``:

* **uid.** The built-in algorithm runs as ``job_uid_base`` (its decoded-data cache and model zoo belong to that
  uid, so built-in jobs share them); each own-code job runs as a uid of its own from ``job_uid_base + 1 …
  job_uid_base + job_uid_count - 1``, chosen from the job name and skipping any uid that owns a process, so two
  jobs never share one. The gid equals the uid; the process has no supplementary groups and no-new-privileges.
* **filesystem.** In a private mount namespace ``TAILOR_HOME`` (keys, database, buckets, other jobs) is an empty
  tmpfs, and so is every directory the job's uid could not traverse anyway on the way to what it needs
  (``/root`` when the interpreter lives in ``/root/.pyenv``). Shown again at their own paths: the job dir
  (read-write), the Python installation and Tailor's package (read-only), and for the built-in algorithm its
  cache and zoo. Everything else is the host as any unprivileged user sees it.
* **afterwards.** Own-code jobs: every process of their uid is killed. Then links and special files the job
  left in its dir are removed (the server reads logs, ``output/failure``, the model and checkpoints from there
  and must never follow a link the job planted) and the dir is given back to the server's user (0700).

A server that is not root cannot change uid: jobs get the scrubbed environment and the 0700/0600 modes of the
home, but own code runs as the server's user and can read what it can; the job log says so.
"""

from __future__ import annotations

import contextlib
import os
import re
import site
import stat
import subprocess
import sys
import threading
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import psutil

from tailor.errors import ServiceUnavailableError
from tailor.settings import Settings

SANDBOX = Path(__file__).with_name("sandbox.py")
# Variables a training process keeps from the server's environment: locale, search path, thread and device
# settings. Everything else (TAILOR_* settings and secrets, AWS_* keys, tokens) stays behind.
_KEEP_ENV = re.compile(r"^(PATH|LANG|LANGUAGE|TZ|TERM|LC_[A-Z]+|(OMP|MKL|OPENBLAS|KMP|CUDA|NCCL|NVIDIA)_[A-Z0-9_]+)$")
_in_use: set[int] = set()
_in_use_lock = threading.Lock()


def is_root() -> bool:
    return os.geteuid() == 0


@lru_cache(maxsize=1)
def sandbox_problem() -> str | None:
    """None when this machine can hide paths and drop uids (root with mount namespaces), else why not."""
    if not is_root():
        return "the server does not run as root"
    try:
        out = subprocess.run(
            [sys.executable, "-I", "-S", str(SANDBOX), "--probe"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as err:
        return f"the sandbox probe failed: {err}"
    if out.returncode != 0:
        return (out.stderr.strip().splitlines() or [f"probe exited {out.returncode}"])[-1]
    return None


def require_own_code_isolation() -> None:
    """As root, own code runs only where it can be isolated (never as root)."""
    problem = sandbox_problem()
    if is_root() and problem is not None:
        raise ServiceUnavailableError(
            f"own code cannot be isolated on this machine ({problem}): run the server where mount namespaces "
            "are allowed (CAP_SYS_ADMIN) or set own_code_engine to 'podman' or 'docker'"
        )


# -- identities ------------------------------------------------------------------------------------------


def builtin_uid(settings: Settings) -> int:
    return settings.job_uid_base


def claim_own_code_uid(settings: Settings, name: str) -> int:
    """A uid no other job or process uses, from the own-code part of the range (released by ``release``)."""
    span = settings.job_uid_count - 1
    start = zlib.crc32(name.encode()) % span
    busy = _uids_with_processes()
    with _in_use_lock:
        for i in range(span):
            uid = settings.job_uid_base + 1 + (start + i) % span
            if uid not in _in_use and uid not in busy:
                _in_use.add(uid)
                return uid
    raise ServiceUnavailableError("every job uid of the range is in use: raise job_uid_count")


def release(uid: int | None) -> None:
    with _in_use_lock:
        _in_use.discard(uid)


def _uids_with_processes() -> set[int]:
    uids: set[int] = set()
    for proc in psutil.process_iter(["uids"]):
        with contextlib.suppress(psutil.Error, TypeError):
            uids.update(proc.info["uids"])
    return uids


# -- environment ----------------------------------------------------------------------------------------


def base_environment(job_dir: Path) -> dict[str, str]:
    """The server's environment reduced to what a training process needs; HOME is its job dir."""
    env = {k: v for k, v in os.environ.items() if _KEEP_ENV.match(k)}
    env.setdefault("PATH", os.defpath)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # docs/MEASURED.md: spinning OpenMP threads collapse 4x
    env["HOME"] = str(job_dir)
    return env


# -- the filesystem plan ----------------------------------------------------------------------------------


def builtin_dirs(settings: Settings) -> tuple[Path, Path]:
    """(decoded-data cache, model zoo) of the built-in algorithm."""
    return settings.cache_dir / "decoded", settings.zoo_dir


def python_paths() -> list[Path]:
    """The interpreter, its standard library, site-packages and Tailor's own package (editable or not)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *site.getsitepackages()}
    paths.add(str(Path(__file__).resolve().parents[2]))  # the directory holding the tailor package
    return [Path(os.path.realpath(p)) for p in sorted(paths) if os.path.isdir(p)]


def _traversable(path: Path, uid: int, gid: int) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    bit = stat.S_IXUSR if st.st_uid == uid else stat.S_IXGRP if st.st_gid == gid else stat.S_IXOTH
    return bool(st.st_mode & bit)


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def plan(settings: Settings, job_dir: Path, uid: int, *, builtin: bool) -> dict[str, Any]:
    """The sandbox plan: covers (hidden) and binds (shown again) for one job; see ``sandbox.py``."""
    home = settings.home.resolve()
    binds: list[tuple[Path, bool]] = [(job_dir.resolve(), True)]
    if builtin:
        binds += [(p.resolve(), True) for p in builtin_dirs(settings) if p.is_dir()]
    binds += [(p, False) for p in python_paths()]
    covers = {home}
    for path, _ in binds:
        for anc in reversed(path.parents):  # "/" first: hide the outermost directory the uid cannot enter
            if not _traversable(anc, uid, uid):
                covers.add(anc)
                break
    outer = sorted(c for c in covers if not any(o != c and _under(c, o) for o in covers))
    shown: list[tuple[Path, bool]] = []
    for path, rw in sorted(binds, key=lambda b: len(b[0].parts)):
        if any(_under(path, c) for c in outer) and not any(_under(path, s) for s, _ in shown):
            shown.append((path, rw))
    return {
        "uid": uid,
        "gid": uid,
        "cwd": str(job_dir),
        "covers": [str(c) for c in outer],
        "binds": [[str(p), rw] for p, rw in shown],
    }


def wrap(command: list[str], job_plan: dict[str, Any]) -> list[str]:
    import json

    return [sys.executable, "-I", "-S", str(SANDBOX), json.dumps(job_plan), "--", *command]


def own_dirs(paths: list[Path], uid: int) -> None:
    """Give ``paths`` (recursively) to ``uid``; the job dir itself becomes 0700."""
    for root in paths:
        _chown_tree(root, uid, uid)
        os.chmod(root, 0o700)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.lchown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


# -- afterwards -----------------------------------------------------------------------------------------


def kill_uid(uid: int) -> int:
    """SIGKILL every process running as ``uid`` (an own-code job's uid is its alone); how many there were."""
    killed = 0
    for proc in psutil.process_iter(["uids"]):
        with contextlib.suppress(psutil.Error, TypeError):
            if uid in proc.info["uids"]:
                proc.kill()
                killed += 1
    return killed


def sanitize(job_dir: Path) -> list[str]:
    """Remove links and special files from a finished job's dir; the relative paths removed."""
    removed: list[str] = []
    for dirpath, dirnames, filenames in os.walk(job_dir):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
                continue
            os.unlink(path)
            removed.append(os.path.relpath(path, job_dir))
        dirnames[:] = [d for d in dirnames if os.path.isdir(os.path.join(dirpath, d))]
    return removed


def reclaim(job_dir: Path, uid: int | None) -> list[str]:
    """After the job: kill what its own uid still runs, sanitize its dir, give it back to the server's user."""
    if uid is not None and uid != os.geteuid():
        kill_uid(uid)
    if not job_dir.is_dir() or job_dir.is_symlink():
        return []
    removed = sanitize(job_dir)
    if is_root():
        _chown_tree(job_dir, os.geteuid(), os.getegid())
    os.chmod(job_dir, 0o700)
    return removed
