"""Data-parallel training under `torchrun`: process group, sharding, agreement, rank-0-only output.

`torchrun --nproc-per-node N -m edge_agent trainer distill ...` starts N copies of the same command;
each sees RANK, LOCAL_RANK and WORLD_SIZE. Every copy trains on its shard of each batch (the global batch
stays `--batch-size`, so the recipe and its accuracy do not change with N); DistributedDataParallel
averages the gradients (gloo on CPU, NCCL on GPU). Validation results are taken from rank 0 so every
copy makes the same keep/stop decision; only rank 0 writes checkpoints, the bundle, the report and
progress. Without torchrun everything here is a no-op.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def start(device: torch.device) -> torch.device:
    """Join the process group torchrun describes (if any); the device this process trains on."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 or not dist.is_available():
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    torch.set_num_threads(threads())
    if dist.get_rank() != 0:
        logging.getLogger("edge_agent").setLevel(logging.WARNING)  # one log: rank 0's
    else:
        log.info("distributed: %d processes (%s), %s", size, dist.get_backend(), device)
    return device


def threads() -> int:
    """CPU threads for this process: N copies on one box share its cores (oversubscribed threads slow
    every copy down many times over)."""
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    return max(1, (os.cpu_count() or 1) // max(1, local_size))


def stop() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """The module that takes the training steps: DistributedDataParallel under torchrun."""
    if not active() or not any(p.requires_grad for p in module.parameters()):
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def shard_order(count: int, seed: int, epoch: int) -> torch.Tensor:
    """This process's share of an epoch's shuffled order (all of it without torchrun)."""
    if not active():
        return torch.randperm(count, generator=torch.Generator().manual_seed(seed * 1000 + epoch))
    rows: Any = range(count)  # a sampler needs only len() of its data set
    sampler: torch.utils.data.DistributedSampler[int] = torch.utils.data.DistributedSampler(
        rows, shuffle=True, seed=seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler), dtype=torch.long)


def local_batch(batch_size: int) -> int:
    return max(1, batch_size // world_size())


def share(rows: torch.Tensor) -> torch.Tensor:
    """This process's share of rows every process drew alike."""
    return rows[rank() :: world_size()] if active() else rows


def gathered(mine: torch.Tensor, count: int) -> torch.Tensor:
    """All `count` rows on every process, from each process's `share` of them (rows rank, rank + N, ...)."""
    if not active():
        return mine
    world = world_size()
    padded = mine.new_zeros((-(-count // world), *mine.shape[1:]))  # all_gather needs equal shapes
    padded[: len(mine)] = mine
    sent = _for_backend(padded)  # under NCCL one copy to the GPU, not one per part
    parts = [torch.empty_like(sent) for _ in range(world)]
    dist.all_gather(parts, sent)
    whole = mine.new_empty((count, *mine.shape[1:]))
    for source, part in enumerate(parts):
        whole[source::world] = part[: len(range(source, count, world))].cpu()
    return whole


def _for_backend(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.cuda() if dist.get_backend() == "nccl" else tensor  # NCCL moves only GPU tensors


def summed(values: list[float]) -> list[float]:
    """Per-process sums added over all processes (for the epoch line)."""
    if not active():
        return values
    tensor = _for_backend(torch.tensor(values, dtype=torch.float64))
    dist.all_reduce(tensor)
    return list(tensor.cpu().tolist())


def from_main(array: np.ndarray) -> np.ndarray:
    """Rank 0's copy of an array every process computed: one set of numbers behind every decision."""
    if not active():
        return array
    tensor = _for_backend(torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)))
    dist.broadcast(tensor, src=0)
    return tensor.cpu().numpy()
