"""What a training batch is made of: the unlabelled rows it takes, its mixup partners, and the clean
batches BatchNorm is recalibrated on. Pure functions of their seeds, so a resumed run draws the same."""

from __future__ import annotations

import numpy as np
import torch

from edge_agent.trainer.tensors import ImageSet, Normalizer


def mixup_pairs(n: int, alpha: float, generator: torch.Generator) -> tuple[float, torch.Tensor | None]:
    """A mixing weight from Beta(α, α) and a partner for every row, or (1, None) when mixup is off."""
    if alpha <= 0 or n < 2:
        return 1.0, None
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    mix = float(np.random.default_rng(seed).beta(alpha, alpha))
    return mix, torch.randperm(n, generator=generator)


def unlabeled_rows(
    first: int, count: int, epoch: int, step: int, steps_per_epoch: int, take: int, seed: int
) -> torch.Tensor:
    """Rows `first .. first + count - 1` (the unlabelled images) for one batch: `take` of them, from a
    stream of fresh permutations that runs across epochs, so every unlabelled image is used before any
    repeats, however many there are. Pure in (epoch, step): a resumed run draws the same rows."""
    if count <= 0 or take <= 0:
        return torch.empty(0, dtype=torch.long)
    start = ((epoch - 1) * steps_per_epoch + step) * take
    rows = []
    while take > 0:
        sweep, offset = divmod(start, count)
        order = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 1_000_003 + sweep))
        chunk = order[offset : offset + take]
        rows.append(chunk)
        start, take = start + len(chunk), take - len(chunk)
    return first + torch.cat(rows)


def bn_batches(train: ImageSet, norm: Normalizer, limit: int = 1024, batch: int = 128) -> list[torch.Tensor]:
    """Clean training images for BatchNorm recalibration, drawn across the whole set in a fixed random
    order: the images are stored class by class, and a batch of one class has the wrong variance (and
    the first `limit` images might be only the first classes)."""
    order = torch.randperm(len(train.images), generator=torch.Generator().manual_seed(0))[:limit]
    images = train.images[order]
    return [norm(images[i : i + batch]) for i in range(0, len(images), batch)]
