"""What one training is asked to do (`FitConfig`), and the optimiser and learning-rate schedule built from it:
made when a training starts (`make_optimizer`), continued at a saved step when it resumes (`resume_schedule`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from edge_agent.trainer.models import head_parameters
from edge_agent.trainer_options import SCHEDULES, DistillOptions


@dataclass
class FitConfig:
    epochs: int
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 5e-4
    tau: float = DistillOptions.tau
    lam: float = 0.0
    # λ over the epochs (losses.kd_weight): a benchmark knob; "half" and "linear" measured no better
    kd_schedule: str = "constant"
    # "sgd": Nesterov momentum 0.9, weight decay as L2; a benchmark knob (a 12-epoch ResNet-18: 70 % against 89.5 %)
    optimizer: str = "adamw"
    # Decoupled KD's (α, β) (losses.py): a benchmark knob, measured below Hinton's KL at 12 epochs
    kd_decoupled: tuple[float, float] | None = None
    # "teacher-right": no KD term on rows whose teacher misses the label (losses.py); a benchmark knob
    kd_rows: str = "all"
    hint_weight: float = 0.0
    mixup: float = 0.0  # Beta(α, α) mixing of batch pairs; with a teacher this is "function matching"
    seed: int = 0
    augment: bool = True
    progress: bool = True
    keep_val_probs: int = 0  # keep the validation probabilities of this many last epochs (for --tune)
    unlabeled_ratio: float = 1.0  # teacher-labelled unlabelled images added to a batch, per labelled image
    schedule: str = DistillOptions.schedule  # "cosine": 5 % warm-up, then a cosine; "onecycle": torch's OneCycleLR
    recalibrate_bn: bool = True  # exact BatchNorm statistics on clean images before each validation
    patience: int = 0  # stop after this many epochs without validation progress (0: run every epoch)
    cooldown: int = 0  # after such a plateau, epochs that take the rate down to 0 before stopping (hooks.Cooldown)
    fit_floor: float = 0.0  # a plateau counts only once the model fits this share of its training images
    backbone_lr_scale: float = 1.0  # fine-tuning: the backbone's learning rate as a fraction of `lr`
    head_warmup_epochs: int = 0  # fine-tuning: epochs that train only the new head
    precision: str = "auto"  # the train step's arithmetic (precision.autocast_dtype)


def make_optimizer(
    model: nn.Module, cfg: FitConfig, total_steps: int, steps_per_epoch: int, extra: list[nn.Parameter] | None = None
) -> tuple[Any, Any]:
    """AdamW (or SGD, `cfg.optimizer`) and its per-step schedule. With `backbone_lr_scale` < 1 or a head
    warm-up (the fine-tuning recipe for pretrained weights) the new head and the backbone are separate
    groups: the head learns at `lr` from the start, the backbone waits out the warm-up and then moves at
    the smaller rate. `extra` (a feature-hint adapter) learns with the head."""
    head = {id(p) for p in head_parameters(model)}
    groups = [{"params": [p for p in model.parameters() if id(p) in head] + (extra or []), "lr": cfg.lr}]
    backbone = [p for p in model.parameters() if id(p) not in head]
    groups.append({"params": backbone, "lr": cfg.lr * cfg.backbone_lr_scale})
    optimizer: torch.optim.Optimizer
    if cfg.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        raise ValueError(f"optimizer {cfg.optimizer!r}: choose adamw or sgd")
    if cfg.schedule not in SCHEDULES:
        raise ValueError(f"schedule {cfg.schedule!r}: choose one of {', '.join(SCHEDULES)}")
    held = cfg.head_warmup_epochs * steps_per_epoch
    if cfg.schedule == "onecycle":
        if held:
            raise ValueError("a head warm-up needs the cosine schedule")
        lrs = [group["lr"] for group in optimizer.param_groups]
        return optimizer, torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lrs, total_steps=total_steps)
    warmup = max(1, (total_steps - held) // 20)

    def cosine(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total_steps - warmup))))

    def after_head_warmup(step: int) -> float:
        return 0.0 if step < held else cosine(step - held)

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, [cosine, after_head_warmup])


def resume_schedule(optimizer: torch.optim.Optimizer, scheduler: Any, steps_done: int) -> None:
    """Continue the schedule after `steps_done` steps. Its shape stays this run's: a resume may raise
    --epochs, and a saved one-cycle state holds the old budget's length (and refuses a step past it)."""
    scheduler.last_epoch = steps_done
    with warnings.catch_warnings():  # get_lr outside step(): the rate of the step about to be taken
        warnings.simplefilter("ignore")
        rates = scheduler.get_lr()
    for group, rate in zip(optimizer.param_groups, rates, strict=True):
        group["lr"] = rate
