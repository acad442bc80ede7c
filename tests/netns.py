"""The test session's own network namespace: only a loopback interface, so every test talks to 127.0.0.1.

Tests send traffic to loopback only. Most servers bind 127.0.0.1 by default, but Ray advertises the machine's
interface address unless that interface does not exist: in a namespace with only ``lo``, a multi-node Ray
cluster on one machine binds and advertises 127.0.0.1 and nothing can leave the machine. The session enters a
new namespace before anything starts (root only: ``unshare(CLONE_NEWNET)`` needs CAP_SYS_ADMIN; CI runs as
root), so every server, browser and cluster the tests start lives in it and goes away with it.
"""

from __future__ import annotations

import ctypes
import os
import subprocess

_CLONE_NEWNET = 0x40000000


def interfaces() -> list[str]:
    """This process's network interfaces, as the kernel reports them (/sys/class/net would show the namespace
    sysfs was mounted in, not ours)."""
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line.strip())


def private() -> bool:
    """True when this process's namespace has no interface but loopback."""
    return interfaces() == ["lo"]


def enter() -> bool:
    """Move this process (and everything it starts later) into a new network namespace with ``lo`` up.
    A no-op when already in one, when not root, or when TAILOR_TEST_NETNS=0; returns whether it is private."""
    if os.geteuid() != 0 or os.environ.get("TAILOR_TEST_NETNS") == "0" or private():
        return private()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNET) != 0:
        return False
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    return private()
