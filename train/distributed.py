"""Data-parallel training across processes (torchrun), NCCL on GPUs and gloo on CPUs.

Every rank builds the same networks from the same seed and sees its own shard of each global
batch (``EpochBatches(rank, world_size)``). Gradients are averaged across ranks right before
every optimiser step by a global optimiser step pre-hook, so each rank applies the same update
and the replicas stay identical. This is the arithmetic of DistributedDataParallel without its
module wrapper: GAN methods freeze the discriminator while the generator steps, and lazily build
networks (CUT's projection head) inside the first step, which DDP's reducer cannot follow without
``find_unused_parameters`` overhead; the hook covers every optimiser, including late ones.
Buffers (BatchNorm statistics) are broadcast from rank 0 before each step, as DDP does by default.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from i2i.errors import I2IError


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # True when setup() created the process group (and so tears it down)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def is_main_process() -> bool:
    """Rank 0 of a torchrun launch (RANK), or a process on its own: the one that writes files."""
    return int(os.environ.get("RANK", "0")) == 0


def setup(device: torch.device) -> tuple[DistEnv, torch.device]:
    """Join the process group torchrun describes (WORLD_SIZE/RANK/LOCAL_RANK); a no-op alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv(), device
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if torch.cuda.device_count() <= local_rank:
            raise I2IError(f"rank {rank} wants cuda:{local_rank} but only {torch.cuda.device_count()} GPUs are visible")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistEnv(rank=rank, world_size=world, local_rank=local_rank, owns_group=owns), device


def teardown(env: DistEnv) -> None:
    if env.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def _average_gradients(optimizer: torch.optim.Optimizer, world_size: int) -> None:
    params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
    for p in params:  # every rank must reduce the same tensors in the same order
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if not params:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in params])  # one collective instead of one per tensor
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


@contextmanager
def synced_gradients(env: DistEnv) -> Iterator[None]:
    """While active, every optimiser averages its gradients across ranks before stepping."""
    if not env.enabled:
        yield
        return

    def hook(optimizer: torch.optim.Optimizer, _args: object, _kwargs: object) -> None:
        _average_gradients(optimizer, env.world_size)

    handle = register_optimizer_step_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def broadcast_state(nets: dict[str, nn.Module], env: DistEnv, parameters: bool = True) -> None:
    """Rank 0's buffers (and parameters) to every rank."""
    if not env.enabled:
        return
    for net in nets.values():
        tensors = list(net.buffers()) + (list(net.parameters()) if parameters else [])
        for t in tensors:
            dist.broadcast(t.data, src=0)
