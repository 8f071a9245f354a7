"""Process-group setup for `torchrun` (and a no-op single-process stand-in).

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK (and LOCAL_WORLD_SIZE, MASTER_ADDR/PORT); with
WORLD_SIZE > 1 we join the group: NCCL with one GPU per process when CUDA is used, gloo on CPU.
Multi-node runs need nothing more than torchrun's own `--nnodes` / `--rdzv-*` flags.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from talkanim.devices import resolve_device
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: rank among world_size, and the device it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None  # None: not distributed

    @property
    def is_main(self) -> bool:
        """Only the main process writes checkpoints, logs and the final weights."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None


def setup_distributed(device: str = "auto") -> DistEnv:
    """Join torchrun's process group when WORLD_SIZE > 1, else describe a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world <= 1:
        return DistEnv(device=dev)
    if dev.type == "cpu":
        # Processes on one machine share its cores: don't let each spawn a thread per core.
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    else:
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistEnv(rank=rank, world_size=world, local_rank=local_rank, device=dev, backend=backend)


def cleanup_distributed(env: DistEnv) -> None:
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(values: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Mean of `values` over ranks (returned, input untouched); identity when single-process."""
    if not env.distributed:
        return values
    out = values.detach().clone().to(env.device)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / env.world_size


def any_rank(flag: bool, env: DistEnv) -> bool:
    """True on every rank when `flag` is true on any (e.g. "the time budget is spent"), so all
    ranks stop at the same step and no collective is left waiting."""
    if not env.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def parameter_checksum(module: torch.nn.Module) -> str:
    """A digest of every parameter and buffer, to compare replicas across ranks."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
