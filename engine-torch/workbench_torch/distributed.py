"""Data parallelism across the processes torchrun or accelerate starts (RANK / WORLD_SIZE / LOCAL_RANK
in the environment): gloo on CPUs, NCCL on CUDA GPUs. Each rank takes an equal share of every batch;
gradients are summed across ranks after the backward of sum(token losses) / (tokens of the whole
batch), which makes the update, and the loss curve, those of one process with the whole batch."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


def init_world(device_type: str) -> World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(0, 1, 0)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def close_world(world: World) -> None:
    if world.active and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(world: World, value: torch.Tensor) -> torch.Tensor:
    if not world.active:
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def sum_gradients(world: World, parameters: list[torch.nn.Parameter]) -> None:
    if not world.active:
        return
    for p in parameters:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)


def any_rank(world: World, flag: bool) -> bool:
    """True on every rank when any rank says so (rank 0's stop request reaches all of them)."""
    if not world.active:
        return flag
    # NCCL reduces only tensors on the GPU.
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_objects(world: World, value: Any) -> list[Any]:
    if not world.active:
        return [value]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, value)
    return out
