"""Data-parallel training across the processes a launcher starts (`torchrun`, `accelerate launch`: both set
WORLD_SIZE/RANK/LOCAL_RANK and MASTER_ADDR/PORT): torch.distributed directly, no engine of our own.

`ddp` (DistributedDataParallel) keeps a full model per process and averages gradients; `fsdp`
(FullyShardedDataParallel, `use_orig_params`) shards parameters, gradients and optimizer state across processes
(with one process it runs unsharded). The model is one FSDP unit (no per-layer wrapping policy yet): its full
parameters are gathered for each forward, so FSDP saves gradient and optimizer memory, not the forward's.
CPU processes talk over gloo, CUDA ones over NCCL, one GPU per process (LOCAL_RANK). A plain process (no
launcher) gets `Parallel()`: no process group, the model called directly.
Rank 0 alone writes checkpoints, metrics and plots; every rank resumes from them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

Strategy = Literal["ddp", "fsdp"]
STRATEGIES = ("ddp", "fsdp")


class _Loss(nn.Module):
    """The model's training loss as `forward`: the call DDP/FSDP hook their gradient syncing into."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any) -> torch.Tensor:
        return self.model.loss(batch)


@dataclass
class Parallel:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    strategy: str = "none"  # none (plain process) | ddp | fsdp
    wrapped: nn.Module | None = field(default=None, repr=False)

    @property
    def launched(self) -> bool:
        return self.strategy != "none"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, configured: str) -> str:
        """One GPU per process: `cuda` becomes `cuda:<LOCAL_RANK>` under a launcher."""
        return f"cuda:{self.local_rank}" if self.launched and configured == "cuda" else configured

    def wrap(self, model: nn.Module) -> Any:
        """The callable that computes a batch's loss with gradients synced across processes."""
        if not self.launched:
            return model.loss
        loss = _Loss(model)
        if self.strategy == "fsdp":
            from torch.distributed.fsdp import FullyShardedDataParallel

            device = next(model.parameters()).device
            self.wrapped = FullyShardedDataParallel(loss, device_id=device, use_orig_params=True)
        else:
            from torch.nn.parallel import DistributedDataParallel

            device = next(model.parameters()).device
            self.wrapped = DistributedDataParallel(
                loss, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=True)  # e.g. encoders of embodiment slots a batch does not use
        return self.wrapped

    def clip_grad_norm(self, params: Sequence[torch.Tensor], max_norm: float) -> None:
        if self.strategy == "fsdp" and self.wrapped is not None:
            self.wrapped.clip_grad_norm_(max_norm)  # type: ignore[operator]  # the norm over every shard
        else:
            torch.nn.utils.clip_grad_norm_(params, max_norm)

    @contextlib.contextmanager
    def full_params(self, writeback: bool = False) -> Iterator[None]:
        """Inside: the model's own parameters hold the full values (FSDP gathers its shards; collective: every
        rank must enter); `writeback`: what is written into them goes back to the shards (loading weights)."""
        if self.strategy == "fsdp" and self.wrapped is not None:
            from torch.distributed.fsdp import FullyShardedDataParallel

            with FullyShardedDataParallel.summon_full_params(self.wrapped, writeback=writeback):
                yield
        else:
            yield

    @property
    def sharded_optimizer(self) -> bool:
        """Each rank's optimizer state is its own (FSDP over several processes): saved per rank."""
        return self.strategy == "fsdp" and self.world_size > 1

    def barrier(self) -> None:
        if self.launched:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.launched and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def setup(strategy: str, device: str) -> Parallel:
    """`Parallel` of this process: a process group when a launcher started it (WORLD_SIZE set), else none."""
    if strategy not in STRATEGIES:
        raise ValueError(f"train.distributed must be one of {STRATEGIES}, not {strategy!r}")
    if "WORLD_SIZE" not in os.environ:
        return Parallel()
    rank, world, local = (int(os.environ.get(k, "0")) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(local)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    return Parallel(rank=rank, world_size=world, local_rank=local, strategy=strategy)
