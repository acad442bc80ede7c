"""The launcher a training process starts through when Tailor runs as root: hide, drop, exec.

Run as ``python -I -S sandbox.py PLAN_JSON -- COMMAND...`` (standard library only, so it starts in ~20 ms and
never imports Tailor). PLAN is built by ``tailor.jobs.isolation.plan``::

    {"uid": 1900000001, "gid": 1900000001, "cwd": "<job dir>",
     "covers": ["<TAILOR_HOME>", "/root"],       # hidden behind an empty tmpfs in the job's mount namespace
     "binds": [["<job dir>", true], ["/root/.pyenv/versions/3.11.7", false]]}   # shown again (rw / read-only)

In a private mount namespace every cover becomes an empty, read-only-to-the-job tmpfs and each bind re-appears
at its own path (so the absolute paths the job is given stay valid); nothing else of the host changes. Then the
process leaves every group, takes the job's uid and gid (real, effective and saved), sets no-new-privileges
(set-uid programs cannot give root back), a 077 umask, enters its job dir and execs the command with the
environment it was given. Any failure ends it with exit code 125 and one line on stderr, before the command ran.
``--probe`` checks that this machine allows all of it (mount namespaces need CAP_SYS_ADMIN).
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

CLONE_NEWNS = 0x00020000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_NO_NEW_PRIVS = 38
EXIT_SANDBOX = 125  # as container runtimes: the launcher failed, the command never ran


class SandboxError(Exception):
    pass


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"{what}: {os.strerror(err)}")


def _mount(
    libc: ctypes.CDLL, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    """mount(2); ``None`` arguments become NULL."""
    enc = [None if v is None else v.encode() for v in (source, target, fstype, data)]
    _check(libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]), f"mount {target}")


def hide(plan: dict, libc: ctypes.CDLL) -> None:
    """A private mount namespace with the plan's covers emptied and its binds shown again."""
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(libc, "none", "/", None, MS_REC | MS_PRIVATE, None)  # nothing below propagates to the host
    # Hold every bind source before the covers hide them; mount() follows /proc/self/fd/N to the original.
    sources = [(path, rw, os.open(path, os.O_PATH)) for path, rw in plan["binds"]]
    os.umask(0o022)
    for cover in plan["covers"]:
        _mount(libc, "tmpfs", cover, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    for path, rw, fd in sources:
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        _mount(libc, f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
        if not rw:
            _mount(libc, None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)
        os.close(fd)
    for cover in plan["covers"]:  # the job may not add files beside its binds
        _mount(libc, None, cover, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)


def drop(uid: int, gid: int, libc: ctypes.CDLL) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    if os.getuid() != uid or os.geteuid() != uid or os.getgid() != gid:
        raise SandboxError("the uid/gid did not change")
    os.umask(0o077)


def probe() -> int:
    """Can this machine hide paths and drop the uid? Exit 0, or 125 with the reason."""
    import tempfile

    libc = _libc()
    with tempfile.TemporaryDirectory(prefix="tailor-probe-") as tmp:
        keep = os.path.join(tmp, "keep")
        os.mkdir(keep)
        pid = os.fork()
        if pid == 0:
            try:
                hide({"covers": [tmp], "binds": [[keep, True]]}, libc)
                drop(65534, 65534, libc)
                os._exit(0)
            except (OSError, SandboxError) as err:
                print(f"tailor sandbox: {err}", file=sys.stderr, flush=True)
                os._exit(EXIT_SANDBOX)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)


def main(argv: list[str]) -> int:
    if argv[1:2] == ["--probe"]:
        return probe()
    if len(argv) < 4 or argv[2] != "--":
        print("usage: sandbox.py PLAN_JSON -- COMMAND...", file=sys.stderr)
        return EXIT_SANDBOX
    plan, cmd = json.loads(argv[1]), argv[3:]
    libc = _libc()
    try:
        if plan["covers"]:
            hide(plan, libc)
        os.chdir(plan["cwd"])
        drop(int(plan["uid"]), int(plan["gid"]), libc)
    except (OSError, SandboxError) as err:
        print(f"tailor sandbox: cannot isolate the job: {err}", file=sys.stderr, flush=True)
        return EXIT_SANDBOX
    try:
        os.execvp(cmd[0], cmd)
    except OSError as err:
        print(f"tailor sandbox: cannot start {cmd[0]!r}: {err.strerror or err}", file=sys.stderr, flush=True)
        return 127 if isinstance(err, FileNotFoundError) else 126
    return EXIT_SANDBOX  # not reached: exec replaced this process


if __name__ == "__main__":
    sys.exit(main(sys.argv))
