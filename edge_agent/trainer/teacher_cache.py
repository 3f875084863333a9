"""Cached teacher outputs: the teacher runs once on a fixed set of augmented views of every image.

Running the teacher dominates a distillation step (a ResNet forward costs several times a MobileNet
forward + backward), and `--tune` trains many students from the same teacher. So the teacher labels
`views` augmented views of each training (and unlabelled) image once; every student epoch then picks
one of those views per image and rebuilds it from its stored augmentation parameters. The student
still sees exactly the view the teacher saw (consistent teaching), and the cache costs
views × images × (6 + classes) floats whatever the image size.

It applies where augmentation allows: mixup makes a new view every step and feature hints need the
teacher's feature maps, so those recipes run the teacher on each batch instead.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from torch import nn

from edge_agent.trainer import distributed
from edge_agent.trainer.precision import autocast, autocast_dtype
from edge_agent.trainer.tensors import Normalizer, apply_augment, sample_augment, to_unit

log = logging.getLogger(__name__)


@dataclass
class TeacherViews:
    params: torch.Tensor  # views × N × 6 (see tensors.sample_augment)
    logits: torch.Tensor  # views × N × classes

    @property
    def views(self) -> int:
        return int(self.params.shape[0])

    def __len__(self) -> int:
        return int(self.params.shape[1])

    def pick(self, index: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One cached view per row of `index`: its augmentation parameters and the teacher's logits."""
        view = torch.randint(0, self.views, (len(index),), generator=generator)
        return self.params[view, index], self.logits[view, index]


@torch.no_grad()
def compute_teacher_views(
    teacher: nn.Module,
    images: torch.Tensor,
    norm: Normalizer,
    views: int,
    seed: int,
    batch_size: int = 128,
    precision: str = "fp32",
) -> TeacherViews:
    """Run the teacher on `views` random augmented views of every uint8 NHWC image.

    Under torchrun every process draws the same views and runs the teacher on its share of the images
    only; the outputs are then gathered, so each process holds the whole cache at 1/N of the cost."""
    if views < 1:
        raise ValueError("views must be at least 1")
    teacher.eval()
    device = norm.mean.device
    narrow = autocast_dtype(device, precision)  # the students' arithmetic (precision.py)
    generator = torch.Generator().manual_seed(seed * 7919 + 17)
    square = images.shape[1] == images.shape[2]
    sharded = distributed.active() and len(images) >= distributed.world_size()
    mine = torch.arange(len(images))
    mine = distributed.share(mine) if sharded else mine
    started = time.perf_counter()
    all_params, all_logits = [], []
    for _ in range(views):
        params = sample_augment(len(images), generator, square=square)
        logits = []
        for rows in mine.split(batch_size):
            x01 = apply_augment(to_unit(images[rows].to(device)), params[rows])
            with autocast(device, narrow):
                logits.append(teacher(norm.unit(x01)).float().cpu())
        all_params.append(params)
        all_logits.append(distributed.gathered(torch.cat(logits), len(images)) if sharded else torch.cat(logits))
    log.info(
        "teacher outputs cached: %d views of %d images in %.1fs%s (the teacher does not run again)",
        views,
        len(images),
        time.perf_counter() - started,
        f", {distributed.world_size()} processes sharing them" if sharded else "",
    )
    return TeacherViews(torch.stack(all_params), torch.stack(all_logits))
