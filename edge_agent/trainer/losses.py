"""Distillation losses: Hinton's soft-target KD (docs/contracts.md §6) and a FitNets-style feature hint."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DistillationLoss(nn.Module):
    """L = CE(s, y) + λ·τ²·KL(softmax(t/τ) ‖ softmax(s/τ)), KL averaged over the batch.

    Rows whose target is -1 (teacher-labelled unlabelled images) feed only the KD term.

    `decoupled=(α, β)` replaces the KL by its two parts (decoupled KD, Zhao et al. 2022): α × the KL of
    the binary "true class or not" split, β × the KL among the other classes alone, so that a teacher
    unsure of the true class does not pull the student's belief in it down while it still says which
    wrong classes look alike. KL = TCKD + (1 − p_teacher(true)) × NCKD; unlabelled rows take the teacher's
    top class as their true one.

    `kd_rows="teacher-right"` keeps the KD term only on rows whose teacher's top class is the label (and on
    unlabelled rows), still averaged over the whole batch: an under-fitted teacher's mistakes on training
    images are not taught, and those rows learn from their label alone.
    """

    def __init__(
        self,
        tau: float = 4.0,
        lam: float = 1.0,
        decoupled: tuple[float, float] | None = None,
        kd_rows: str = "all",
    ) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError("tau must be positive")
        if lam < 0:
            raise ValueError("lam must not be negative")
        if kd_rows not in ("all", "teacher-right"):
            raise ValueError(f"kd_rows {kd_rows!r}: choose all or teacher-right")
        if kd_rows != "all" and decoupled is not None:
            raise ValueError("kd_rows selects rows of Hinton's KL only; decoupled KD uses every row")
        self.kd_rows = kd_rows
        self.tau = tau
        self.lam = lam
        self.decoupled = decoupled

    def forward(
        self, student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, targets: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        labelled = targets >= 0
        if labelled.any():
            task_loss = F.cross_entropy(student_logits[labelled], targets[labelled])
        else:
            task_loss = student_logits.sum() * 0.0
        if teacher_logits is None or self.lam == 0:
            kd_loss = torch.zeros((), device=student_logits.device)
        else:
            teacher_logits = teacher_logits.detach()
            if self.decoupled is not None:
                true = torch.where(labelled, targets, teacher_logits.argmax(1))
                kd_loss = decoupled_kd(student_logits, teacher_logits, true, self.tau, *self.decoupled)
            else:
                log_p_student = F.log_softmax(student_logits / self.tau, dim=1)
                p_teacher = F.softmax(teacher_logits / self.tau, dim=1)
                per_row = F.kl_div(log_p_student, p_teacher, reduction="none").sum(1)
                if self.kd_rows == "teacher-right":
                    per_row = per_row * (~labelled | (teacher_logits.argmax(1) == targets))
                kd_loss = per_row.mean() * self.tau**2
        return {"loss": task_loss + self.lam * kd_loss, "task_loss": task_loss, "kd_loss": kd_loss}


def decoupled_kd(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    true: torch.Tensor,
    tau: float,
    alpha: float,
    beta: float,
) -> torch.Tensor:
    """α·TCKD + β·NCKD, each × τ² and averaged over the batch (see DistillationLoss)."""
    is_true = F.one_hot(true, student_logits.shape[1]).bool()
    p_s, p_t = F.softmax(student_logits / tau, dim=1), F.softmax(teacher_logits / tau, dim=1)

    def split(p: torch.Tensor) -> torch.Tensor:  # [p(true), p(any other)], kept off log(0)
        inside = (p * is_true).sum(1, keepdim=True)
        return torch.cat([inside, 1.0 - inside], 1).clamp_min(1e-8)

    b_s, b_t = split(p_s), split(p_t)
    tckd = (b_t * (b_t.log() - b_s.log())).sum(1).mean()
    # Among the other classes only: the true class masked out before the softmax.
    masked = is_true * 1e4
    log_q_s = F.log_softmax(student_logits / tau - masked, dim=1)
    q_t = F.softmax(teacher_logits / tau - masked, dim=1)
    nckd = F.kl_div(log_q_s, q_t, reduction="batchmean")
    return (alpha * tckd + beta * nckd) * tau**2


def kd_weight(schedule: str, epoch: int, epochs: int) -> float:
    """The distillation term's share of λ in `epoch` (1-based) of at most `epochs`: "constant" 1; "half" 1
    for the first half, then 0 (the student ends on the labels alone: early-stopped KD, meant to free a
    student from a teacher no better than itself); "linear" from 1 down towards 0. On our photograph sets
    neither beat "constant" (docs/benchmarks.md)."""
    if schedule == "constant":
        return 1.0
    if schedule == "half":
        return 1.0 if epoch <= epochs / 2 else 0.0
    if schedule == "linear":
        return 1.0 - (epoch - 1) / epochs
    raise ValueError(f"unknown distillation schedule {schedule!r}")


class FeatureHintLoss(nn.Module):
    """FitNets hint: a 1×1 adapter maps student features to the teacher's channels; MSE between them."""

    def __init__(self, student_channels: int, teacher_channels: int) -> None:
        super().__init__()
        self.adapter = nn.Conv2d(student_channels, teacher_channels, kernel_size=1, bias=False)

    def forward(self, student_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
        adapted = self.adapter(student_features)
        if adapted.shape[-2:] != teacher_features.shape[-2:]:
            adapted = F.interpolate(adapted, size=teacher_features.shape[-2:], mode="bilinear", align_corners=False)
        return F.mse_loss(adapted, teacher_features.detach())
