"""Data-parallel training across processes: torch.distributed under ``torchrun`` (gloo on CPU, NCCL on CUDA).

The jobs runner launches ``torchrun --standalone --nproc_per_node=<InstanceCount>`` when InstanceCount > 1;
on several machines each host runs ``torchrun --nnodes=<hosts> --rdzv_backend=c10d
--rdzv_endpoint=<host1>:29400`` (README). torchrun sets RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE;
without them (or with WORLD_SIZE=1) everything here is a no-op and training is single-process.

What each process does:
* its shard of every epoch: one permutation drawn from the same seeded generator on every rank, rank r takes
  positions r, r+W, r+2W, ... truncated to the same length everywhere (DistributedSampler's split over the
  in-memory uint8 cache; equal lengths keep the collective calls in lock-step);
* ``mini_batch_size`` images per step (per worker, as SageMaker's dist_sync: the global batch is
  mini_batch_size x workers), gradients averaged by DistributedDataParallel;
* one tiny all-reduce per step of (elapsed seconds, stop requested) so a time budget or a SIGTERM ends every
  rank at the same step instead of leaving one blocked in a collective;
* only rank 0 logs, writes checkpoints and the model artifact.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

# A peer that dies closes its sockets and the survivors' collectives fail at once; this bounds only a peer
# that hangs alive. 10 minutes is longer than any epoch's slowest step we measured (ResNet-152, 2 cores).
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=10)


@dataclass
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = torch.device("cpu")  # noqa: RUF009 - immutable default

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """DistributedDataParallel over the parameters that currently require grad (identity when single)."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=True)

    def sum(self, values: Sequence[float]) -> list[float]:
        return self._reduce(values, dist.ReduceOp.SUM)

    def max(self, values: Sequence[float]) -> list[float]:
        return self._reduce(values, dist.ReduceOp.MAX)

    def _reduce(self, values: Sequence[float], op: dist.ReduceOp) -> list[float]:
        if not self.active:
            return list(values)
        t = torch.tensor(list(values), dtype=torch.float64 if self.device.type == "cpu" else torch.float32)
        t = t.to(self.device)
        dist.all_reduce(t, op=op)
        return [float(v) for v in t.cpu()]

    def shard(self, perm: torch.Tensor) -> torch.Tensor:
        """This rank's positions of a shared permutation, equal in length on every rank."""
        if not self.active:
            return perm
        per_rank = perm.shape[0] // self.world_size
        return perm[self.rank :: self.world_size][:per_rank]

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()


def from_env() -> Context:
    """Join the process group torchrun describes in the environment (nothing to join when WORLD_SIZE <= 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
    return Context(rank, world, local_rank, local_world, device)


def host_names(world_size: int) -> list[str]:
    return [f"algo-{i + 1}" for i in range(world_size)]


def write_resource_config(job_dir: Path, ctx: Context) -> Path:
    """SageMaker's resourceconfig.json as this process sees it (current_host = algo-<rank+1>).

    Processes of one job share the job directory, so each writes its own copy under
    ``input/config/hosts/algo-<n>/resourceconfig.json`` and exports SM_CURRENT_HOST / SM_HOSTS; the runner's
    ``input/config/resourceconfig.json`` (current_host algo-1) stays as written.
    """
    hosts = host_names(ctx.world_size)
    current = hosts[ctx.rank]
    base = job_dir / "input" / "config"
    shared = base / "resourceconfig.json"
    config = json.loads(shared.read_text()) if shared.is_file() else {}
    config |= {"current_host": current, "hosts": hosts, "instance_count": ctx.world_size}
    path = base / "hosts" / current / "resourceconfig.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=1, sort_keys=True))
    os.environ["SM_CURRENT_HOST"] = current
    os.environ["SM_HOSTS"] = json.dumps(hosts)
    return path
