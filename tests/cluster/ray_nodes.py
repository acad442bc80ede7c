"""A real multi-node Ray cluster on this machine, for the cluster tests.

Each node is ``ray start --block`` in a process group of its own (so the test owns it and can kill exactly it):
a head with no CPUs (no work lands there, as on a cluster whose head only coordinates) and worker nodes with
1 CPU each and a custom resource naming the "host" (``host-a``, ``host-b``…), which instance-type tables and
assertions use to tell the nodes apart. Everything binds 127.0.0.1: the session runs in its own network
namespace (tests/netns.py), where loopback is the only interface, so Ray has nothing else to advertise.

Never ``ray stop``: it would kill every Ray process on the machine, not just this cluster's.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).with_name("ray"))
# A few hundred MB of object store per node: tests move model files and logs, not data sets (default: 30 % RAM).
OBJECT_STORE_BYTES = 150_000_000
START_ATTEMPTS = 3


def ray_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        RAY_USAGE_STATS_ENABLED="0",
        RAY_DISABLE_DOCKER_CPU_WARNING="1",
        # 2 cores shared by everything: keep Ray from pre-starting idle Python workers on every node.
        RAY_prestart_worker_first_driver="0",
        OMP_WAIT_POLICY="PASSIVE",
        # A lost node is declared dead after 3 missed 1 s health checks (default 5 x 3 s): the node-loss tests
        # wait for that, and a real cluster may keep Ray's defaults.
        RAY_health_check_period_ms="1000",
        RAY_health_check_failure_threshold="3",
        # On the shared 2-core VM under load (~15) a node's dashboard agent took > 15 s to import and the raylet
        # gave up waiting for its port file; give slow starts room instead of failing the session.
        RAY_raylet_start_wait_time_s="120",
        RAY_agent_register_timeout_ms="120000",
        RAY_worker_register_timeout_seconds="120",
    )
    return env


@dataclass
class Node:
    name: str
    proc: subprocess.Popen
    log: Path

    def raylet(self) -> psutil.Process | None:
        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return None
        return next((p for p in kids if p.name() == "raylet"), None)

    def kill(self) -> None:
        """What losing the host looks like to Ray: SIGKILL its raylet and everything of the node's group."""
        raylet = self.raylet()
        if raylet is not None:
            raylet.kill()
        _kill_tree(self.proc.pid)


@dataclass
class RayCluster:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp")))
    port: int = 0
    nodes: dict[str, Node] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start_head(self, port: int) -> str:
        self.port = port
        args = ["--head", f"--port={port}", "--num-cpus=0", "--include-dashboard=false", "--disable-usage-stats"]
        head = self._start("head", args + [f"--temp-dir={self.root}", "--resources", json.dumps({"tailor-head": 1})])
        _autogroup_nice(head.proc.pid, -10)
        self.wait_nodes(1)
        _autogroup_nice(head.proc.pid, 0)
        return self.address

    def add_node(self, name: str, cpus: int = 1, resources: dict[str, float] | None = None) -> Node:
        res = {name: 1.0, **(resources or {})}
        args = [f"--address={self.address}", f"--num-cpus={cpus}", "--resources", json.dumps(res)]
        for attempt in range(START_ATTEMPTS):
            node = self._start(name, args)
            try:
                _autogroup_nice(node.proc.pid, -10)  # see _autogroup_nice
                self.wait_nodes(len(self.nodes), timeout=60.0)
                _autogroup_nice(node.proc.pid, 0)
                return node
            except (RuntimeError, TimeoutError):
                # Under heavy load (~15 on 2 cores) a raylet can abort because its dashboard agent did not write
                # its port file within Ray's fixed 15 s, and `ray start` then hangs; start the node afresh.
                if attempt == START_ATTEMPTS - 1:
                    raise
                _kill_tree(node.proc.pid)
                self.nodes.pop(name, None)
        raise AssertionError("unreachable")

    def _start(self, name: str, args: list[str]) -> Node:
        log = self.root / f"{name}.out"
        cmd = [RAY, "start", "--block", "--node-ip-address=127.0.0.1", f"--object-store-memory={OBJECT_STORE_BYTES}"]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd + args, stdout=out, stderr=subprocess.STDOUT, env=ray_env(), start_new_session=True
            )
        self.nodes[name] = node = Node(name, proc, log)
        return node

    def alive_nodes(self) -> list[dict]:
        """The cluster's live nodes as Ray's GCS reports them (``ray list nodes``' fields)."""
        code = (
            f"import json, ray; ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False);"
            "print('nodes:', json.dumps([n for n in ray.nodes() if n['Alive']]))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=ray_env(), timeout=60, check=True
        ).stdout
        # Ray may forward raylet messages to the driver's stdout too: read the one line this code printed.
        return json.loads(next(ln for ln in out.splitlines() if ln.startswith("nodes: "))[len("nodes: ") :])

    def wait_nodes(self, count: int, timeout: float = 90.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            for node in self.nodes.values():
                if node.proc.poll() is not None:
                    raise RuntimeError(f"ray node {node.name} exited: {node.log.read_text()[-2000:]}")
            try:
                alive = self.alive_nodes()
            except subprocess.CalledProcessError:
                alive = []
            if len(alive) == count:
                return alive
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(alive)} of {count} ray nodes alive after {timeout:g} s")
            time.sleep(1.0)

    def stop(self) -> None:
        for node in reversed(list(self.nodes.values())):
            _kill_tree(node.proc.pid)
        self.nodes.clear()


def _autogroup_nice(pid: int, nice: int) -> None:
    """A node runs in a session of its own, so Linux's autogroup scheduler gives it one share of the CPU beside
    every other session, whatever its processes' nice values. On the shared 2-core VM (~15 busy sessions) a
    starting raylet's dashboard agent then got ~0.15 core and missed Ray's fixed 15 s deadline for its port
    file. The node starts at a higher autogroup priority (root only; elsewhere a no-op) and drops back to
    the default once it has joined."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))


def _kill_tree(pid: int) -> None:
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        procs = []
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=10)
