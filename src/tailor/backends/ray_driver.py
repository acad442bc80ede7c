"""The driver of one training job on a Ray cluster: ``python -m tailor.backends.ray_driver <job dir>``.

The job runner starts this process as it starts the algorithm on the local backend (``RayTraining.
start_training``), reads its stdout as the job's log and signals its process group on stop. The job's description
(command, environment, channels, checkpoint prefix, resources, storage settings) arrives as one JSON object on
stdin, so S3 keys are never written to disk or shown on a command line. The driver:

1. joins the cluster and reserves one placement-group bundle per instance (the instance type's CPUs, GPUs,
   memory and custom resources), strategy SPREAD: instances land on different nodes whenever the cluster has
   room there, yet a job of 2 instances still runs on one 8-CPU host, as ``torchrun --standalone`` would.
   STRICT_SPREAD would leave such a job waiting for a second node forever. It waits at most
   ``ray_resource_wait_seconds`` for the bundles;
2. starts one ``TrainingWorker`` actor per bundle (``ray_worker``) and gives each its rank: MASTER_ADDR is rank
   0's node IP, MASTER_PORT a port free on that node, RANK / WORLD_SIZE, and LOCAL_RANK / LOCAL_WORLD_SIZE
   counted among the ranks that share a node IP (processes on one machine split its cores). The algorithm forms
   its torch.distributed group from these (c10d over env://);
3. prints each instance's output on its own stdout: rank 0's lines as they are (the runner's metric parser sees
   them once, as under torchrun, where only rank 0 logs), every other line prefixed ``[algo-<n>]``; its own lines
   start with ``[tailor-ray]``, and ``[tailor-ray] status <SecondaryStatus>: <message>`` lines become status
   transitions (``RayTraining.status_change``); an instance's line that starts with ``[tailor-ray]`` is
   prefixed, so no algorithm can forge one;
4. on SIGTERM (StopTrainingJob, MaxRuntimeInSeconds) forwards SIGTERM to every algorithm process, waits for them
   (rank 0 checkpoints and exits 143) up to the stop grace, then kills the actors;
5. when a node is lost (an actor dies or stops answering), stops the other instances, frees the placement group
   and starts all instances again from the last checkpoint in S3, on whatever nodes have room, at most
   ``ray_max_restarts`` times; each restart is a ``Restarting`` transition. Out of restarts or resources, the job
   fails with a reason that names the node and the epoch;
6. on success copies rank 0's model and output files into the server's job dir (the runner uploads the artifact
   as on the local backend) and exits with the algorithm's exit code; an algorithm failure's reason (the first
   instance to fail) goes to ``output/failure``.

Why actors and not Ray Train's ``TorchTrainer``: the algorithm is a subprocess under SageMaker's training contract
(job dir, SM_* variables, its own SIGTERM handling, checkpoints and exit codes), not a function-shaped training
loop; TorchTrainer would need the ``ray[train]`` extras, run the loop inside Ray's worker process and own the
process group itself. Plain actors that run the same command as the local backend keep one algorithm and one
contract for both backends.

Why a driver process per job rather than threads of the server: Ray ties actors and placement groups to the
driver that made them, so a server (or this driver) that dies takes its jobs' instances with it, and the runner
signals, watches and recovers a job through one local process, exactly as on the local backend.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tailor.backends.ray_worker import SAMPLE_S, SAMPLES_FILE, TrainingWorker
from tailor.errors import CAPACITY_FAILURE, PLATFORM_FAILURE

MARK = "[tailor-ray]"
POLL_S = 0.25  # how often instances' output is collected: log latency
UNRESPONSIVE_S = 30.0  # an instance that answers no poll this long counts as lost with its node
NODES_S = 2.0  # how often the cluster's node list is read (one GCS call)
SETTLE_S = 15.0  # after one instance fails or is lost, how long the others get to end on their own
START_TIMEOUT_S = 120.0  # an actor's process must start (Python + Tailor import) within this
_EPOCH = re.compile(r"Epoch\[(\d+)\]")


def say(text: str) -> None:
    print(f"{MARK} {text}", flush=True)


def status(secondary: str, message: str) -> None:
    say(f"status {secondary}: {message}")


@dataclass
class Outcome:
    kind: str  # "done" (every instance ended), "lost" (a node went away), "no-resources", "stopped"
    rc: int = 0
    failure: str | None = None
    lost: str = ""  # the lost node, in words


@dataclass
class Instance:
    rank: int
    actor: Any
    node: dict[str, Any] = field(default_factory=dict)
    cursor: int = 0
    done: bool = False
    lost: bool = False
    rc: int | None = None
    ended: float | None = None
    failure: str | None = None
    last_answer: float = field(default_factory=time.monotonic)
    sample: dict[str, Any] | None = None  # its algorithm's latest CPU/memory/GPU figures

    @property
    def host(self) -> str:
        return f"algo-{self.rank + 1}"


class Driver:
    def __init__(self, job_dir: Path, desc: dict[str, Any]) -> None:
        import ray

        from tailor.backends import ray_cluster

        self.ray = ray
        ray_cluster.connect(desc["ray_address"])
        self.dir = job_dir
        self.desc = desc
        self.n = int(desc["instance_count"])
        self.stop = threading.Event()
        self.epoch: int | None = None  # the last epoch rank 0 reported
        self.lost_note = ""  # "node … lost at epoch …; " once a restart waits for resources
        self._nodes_at, self._dead = 0.0, set[str]()  # when the node table was read, the dead nodes in it
        self._sampled_at = 0.0  # when the instances' resource figures were last written for the runner

    # -- the job ---------------------------------------------------------------------------------------
    def run(self) -> int:
        restarts = 0
        while True:
            outcome = self.attempt(resumed=restarts > 0)
            if outcome.kind in ("done", "stopped"):
                if outcome.rc != 0 and outcome.failure and not self.stop.is_set():
                    self.write_failure(outcome.failure)
                return outcome.rc
            if outcome.kind == "no-resources":
                self.write_failure(f"{CAPACITY_FAILURE}{outcome.lost}{outcome.failure}")
                return 1
            at = f"at epoch {self.epoch}" if self.epoch is not None else "before the first epoch"
            if restarts >= self.desc["max_restarts"]:
                reason = f"node {outcome.lost} lost {at}; no restarts left (ray_max_restarts)"
                self.write_failure(f"{PLATFORM_FAILURE}{reason}")
                return 1
            restarts += 1
            status(
                "Restarting",
                f"node {outcome.lost} lost {at}: restarting {self.n} instance(s) from the last checkpoint "
                f"(restart {restarts} of {self.desc['max_restarts']})",
            )
            self.lost_note = f"node {outcome.lost} lost {at}; "

    def attempt(self, *, resumed: bool) -> Outcome:
        from ray.util.placement_group import placement_group, remove_placement_group

        bundle = self.desc["bundle"]
        pg = placement_group([dict(bundle) for _ in range(self.n)], strategy="SPREAD")
        instances: list[Instance] = []
        try:
            waited = self.wait_ready(pg)
            if waited is None:
                return Outcome("stopped", rc=143)
            if waited < 0:
                wait = self.desc["resource_wait_s"]
                return Outcome(
                    "no-resources",
                    failure=f"no resources for {self.n} instance(s) of {self.desc['instance_type']} "
                    f"({_shown(bundle)} each) within {wait:g} s",
                    lost=self.lost_note,
                )
            instances = self.place(pg)
            if not instances:
                return Outcome("lost", lost="unknown (an instance's actor did not start)")
            self.announce(instances, waited, resumed)
            return self.watch(instances)
        finally:
            self.release(instances)
            with contextlib.suppress(Exception):  # the cluster frees it with this driver anyway
                remove_placement_group(pg)

    def release(self, instances: list[Instance]) -> None:
        """Remove each instance's job dir on its node (bounded), then kill the actors and their processes."""
        refs = [i.actor.cleanup.remote() for i in instances if not i.lost]
        if refs:
            self.ray.wait(refs, num_returns=len(refs), timeout=10)
        for inst in instances:
            with contextlib.suppress(Exception):
                self.ray.kill(inst.actor, no_restart=True)

    def wait_ready(self, pg: Any) -> float | None:
        """Seconds until the bundles were reserved; -1 when they were not within the wait, None on stop."""
        t0 = time.monotonic()
        ready = pg.ready()
        deadline = t0 + self.desc["resource_wait_s"]
        told = False
        while not self.ray.wait([ready], timeout=0.5)[0]:
            if self.stop.is_set():
                return None
            if time.monotonic() > deadline:
                return -1
            if not told and time.monotonic() - t0 > 2:
                say(f"waiting for resources: {self.n} x {_shown(self.desc['bundle'])} (strategy SPREAD)")
                told = True
        return time.monotonic() - t0

    def place(self, pg: Any) -> list[Instance]:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        bundle = self.desc["bundle"]
        custom = {k: v for k, v in bundle.items() if k not in ("CPU", "GPU", "memory")}
        worker = self.ray.remote(TrainingWorker)
        instances = []
        for rank in range(self.n):
            actor = worker.options(
                num_cpus=bundle.get("CPU", 0),
                num_gpus=bundle.get("GPU", 0),
                memory=bundle.get("memory") or None,
                resources=custom or None,
                max_concurrency=4,  # poll and signal while start's thread runs
                scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=rank),
            ).remote()
            instances.append(Instance(rank, actor))
        try:
            infos = self.ray.get([i.actor.info.remote() for i in instances], timeout=START_TIMEOUT_S)
        except (self.ray.exceptions.RayError, self.ray.exceptions.GetTimeoutError) as err:
            say(f"an instance did not start: {type(err).__name__}")
            for inst in instances:
                self.ray.kill(inst.actor, no_restart=True)
            return []
        for inst, info in zip(instances, infos, strict=True):
            inst.node = info
        return instances

    def announce(self, instances: list[Instance], waited: float, resumed: bool) -> None:
        labels = _node_labels(self.ray)
        for inst in instances:  # named now: a dead node's entry no longer lists its resources
            inst.node["label"] = labels.get(inst.node["node_id"], inst.node["hostname"])
        where = ", ".join(f"{i.host} on {i.node['label']} ({_short(i)})" for i in instances)
        say(f"placement group: {self.n} x {_shown(self.desc['bundle'])} (SPREAD) ready in {waited:.1f} s: {where}")
        master = instances[0]
        port = self.ray.get(master.actor.free_port.remote(), timeout=60)
        by_ip: dict[str, list[int]] = {}
        for inst in instances:
            by_ip.setdefault(inst.node["ip"], []).append(inst.rank)
        for inst in instances:
            local = by_ip[inst.node["ip"]]
            inst.actor.start.remote(self.task(inst, master.node["ip"], port, local.index(inst.rank), len(local)))
        say(f"rendezvous: MASTER_ADDR={master.node['ip']} MASTER_PORT={port} WORLD_SIZE={self.n}")
        if resumed:
            hosts = ", ".join(sorted({i.node["label"] for i in instances}))
            status("Training", f"training resumed on {hosts} from the last checkpoint")

    def task(self, inst: Instance, master: str, port: int, local_rank: int, local_world: int) -> dict[str, Any]:
        d = self.desc
        config = dict(d["config"])
        hosts = [f"algo-{i + 1}" for i in range(self.n)]
        resource = json.loads(config.get("resourceconfig.json", "{}"))
        resource |= {"current_host": inst.host, "hosts": hosts, "instance_count": self.n}
        config["resourceconfig.json"] = json.dumps(resource, indent=2, sort_keys=True) + "\n"
        dist_env = {
            "MASTER_ADDR": master,
            "MASTER_PORT": str(port),
            "RANK": str(inst.rank),
            "WORLD_SIZE": str(self.n),
            "LOCAL_RANK": str(local_rank),
            "LOCAL_WORLD_SIZE": str(local_world),
            "SM_CURRENT_HOST": inst.host,
        }
        keys = ("job_name", "server_dir", "server_home", "server_python", "cmd", "env", "channels", "checkpoint_uri")
        return {k: d[k] for k in keys} | {
            "rank": inst.rank,
            "host": inst.host,
            "config": config,
            "dist_env": dist_env,
            "storage": d["storage"],
        }

    # -- watching --------------------------------------------------------------------------------------
    def watch(self, instances: list[Instance]) -> Outcome:
        kill_at: float | None = None
        settle_at: float | None = None
        while True:
            if self.stop.is_set() and kill_at is None:
                say("SIGTERM: forwarding it to every instance")
                for inst in instances:
                    inst.actor.signal.remote(signal.SIGTERM)
                kill_at = time.monotonic() + self.desc["grace_s"]
            self.poll(instances)
            live = [i for i in instances if not i.done and not i.lost]
            if not live:
                break
            trouble = any(i.lost or (i.rc or 0) != 0 for i in instances)
            if trouble and settle_at is None:
                settle_at = time.monotonic() + SETTLE_S
            if settle_at is not None and time.monotonic() > settle_at:
                say(f"{', '.join(i.host for i in live)} still running {SETTLE_S:g} s after a peer ended: stopping")
                break
            if kill_at is not None and time.monotonic() > kill_at:
                say(f"still running {self.desc['grace_s']:g} s after SIGTERM: killing the instances")
                return Outcome("stopped", rc=137)
            time.sleep(POLL_S)
        lost = [i for i in instances if i.lost]
        if lost and not self.stop.is_set():
            return Outcome("lost", lost=", ".join(i.node["label"] for i in lost))
        return self.result(instances)

    def poll(self, instances: list[Instance]) -> None:
        live = [i for i in instances if not i.done and not i.lost]
        refs = {i.actor.poll.remote(i.cursor): i for i in live}
        ready, _ = self.ray.wait(list(refs), num_returns=len(refs), timeout=2.0)
        now = time.monotonic()
        for ref in ready:
            inst = refs[ref]
            try:
                state = self.ray.get(ref)
            except self.ray.exceptions.RayError:
                inst.lost = True
                say(f"{inst.host}: its actor died ({_short(inst)})")
                continue
            inst.last_answer = now
            inst.cursor += len(state["lines"])
            for kind, text in state["lines"]:
                self.forward(inst, kind, text)
            inst.sample = state.get("sample")
            if state["done"]:
                inst.done, inst.rc, inst.ended, inst.failure = True, state["rc"], state["ended"], state["failure"]
        self.write_samples(instances, now)
        dead = self.dead_nodes(now)
        for inst in live:
            if inst.done or inst.lost:
                continue
            if inst.node["node_id"] in dead:
                inst.lost = True
                say(f"{inst.host}: its node is dead ({_short(inst)})")
            elif now - inst.last_answer > UNRESPONSIVE_S:
                inst.lost = True
                say(f"{inst.host}: no answer for {UNRESPONSIVE_S:g} s ({_short(inst)})")

    def write_samples(self, instances: list[Instance], now: float) -> None:
        """The job's resource figures, summed over the running instances (as the local backend sums a process
        tree), into SAMPLES_FILE for the runner's sampler; at most every SAMPLE_S, atomically."""
        samples = [i.sample for i in instances if i.sample and not i.done and not i.lost]
        if not samples or now - self._sampled_at < SAMPLE_S:
            return
        self._sampled_at = now
        utils = [x["gpu_utilization"] for x in samples if x.get("gpu_utilization") is not None]
        gpu_mem = [x["gpu_memory_bytes"] for x in samples if x.get("gpu_memory_bytes") is not None]
        figures = {
            "time": time.time(),
            "instances": len(samples),
            "cpu_percent": sum(x["cpu_percent"] for x in samples),
            "rss_bytes": sum(x["rss_bytes"] for x in samples),
            "gpu_utilization": sum(utils) / len(utils) if utils else None,
            "gpu_memory_bytes": sum(gpu_mem) if gpu_mem else None,
        }
        tmp = self.dir / f".{SAMPLES_FILE}.tmp"
        with contextlib.suppress(OSError):  # a figure missed is better than a driver that fails on a full disk
            tmp.write_text(json.dumps(figures))
            os.replace(tmp, self.dir / SAMPLES_FILE)

    def dead_nodes(self, now: float) -> set[str]:
        """Ids of nodes Ray has declared dead, asked every NODES_S (a lost node's actor may never answer)."""
        if now - self._nodes_at >= NODES_S:
            self._nodes_at = now
            self._dead = {n["NodeID"] for n in self.ray.nodes() if not n["Alive"]}
        return self._dead

    def forward(self, inst: Instance, kind: str, text: str) -> None:
        if kind == "sys":
            print(f"{MARK} {inst.host}: {text}", flush=True)
            return
        if inst.rank == 0 and not text.startswith(MARK):
            if m := _EPOCH.search(text):
                self.epoch = int(m.group(1))
            print(text, flush=True)
        else:
            print(f"[{inst.host}] {text}", flush=True)

    def result(self, instances: list[Instance]) -> Outcome:
        failed = sorted((i for i in instances if i.done and i.rc != 0), key=lambda i: i.ended or 0.0)
        rank0 = instances[0]
        if self.stop.is_set():
            return Outcome("stopped", rc=rank0.rc if rank0.rc is not None else 143)
        if failed:
            first = failed[0]
            reason = first.failure or f"the algorithm on {first.host} exited with code {first.rc}"
            return Outcome("done", rc=first.rc or 1, failure=reason)
        if any(not i.done for i in instances):
            return Outcome("done", rc=1, failure="an instance did not end with the others")
        files = self.ray.get(rank0.actor.collect.remote(), timeout=600)
        for rel, data in files.items():
            dest = self.dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        say(f"copied {len(files)} model and output files from {rank0.host}")
        return Outcome("done", rc=0)

    def write_failure(self, reason: str) -> None:
        out = self.dir / "output"
        out.mkdir(parents=True, exist_ok=True)
        (out / "failure").write_text(reason[:1024])
        say(f"failed: {reason}")


def _short(inst: Instance) -> str:
    return f"node {inst.node['node_id'][:12]}"


def _shown(bundle: dict[str, float]) -> str:
    parts = []
    for key, value in bundle.items():
        shown = f"{value / (1 << 30):g} GiB" if key == "memory" else f"{value:g}"
        parts.append(f"{key} {shown}")
    return "{" + ", ".join(parts) + "}"


_RAY_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")


def _node_labels(ray: Any) -> dict[str, str]:
    """Node id -> how a person names a live node: its custom resources (``host-b``), else its hostname and IP."""
    out = {}
    for node in ray.nodes():
        if not node["Alive"]:
            continue
        custom = sorted(
            k for k in node["Resources"] if k not in _RAY_RESOURCES and not k.startswith(("node:", "accelerator"))
        )
        out[node["NodeID"]] = ",".join(custom) or f"{node['NodeManagerHostname']} ({node['NodeManagerAddress']})"
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tailor.backends.ray_driver JOB_DIR  (the job's description as JSON on stdin)")
        return 2
    desc = json.loads(sys.stdin.read())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # a stop while joining the cluster
    try:
        driver = Driver(Path(args[0]), desc)
    except Exception as err:  # cannot join the cluster: one line, the job fails with it
        out = Path(args[0]) / "output"
        out.mkdir(parents=True, exist_ok=True)
        (out / "failure").write_text(f"cannot run on the Ray cluster: {err}"[:1024])
        say(f"cannot run on the Ray cluster: {err}")
        return 1
    # ray.init installs a SIGTERM handler that exits at once: ours forwards the stop to the instances instead.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    driver.stop = stop
    return driver.run()


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # The instances and the placement group are gone already; Ray's own shutdown at exit takes seconds more
    # on a busy machine, and the cluster drops whatever a closed driver connection leaves.
    os._exit(code)
