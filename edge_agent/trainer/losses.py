"""Distillation losses: Hinton's soft-target KD (docs/contracts.md §6) and a FitNets-style feature hint."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DistillationLoss(nn.Module):
    """L = CE(s, y) + λ·τ²·KL(softmax(t/τ) ‖ softmax(s/τ)), KL averaged over the batch.

    Rows whose target is -1 (teacher-labelled unlabelled images) feed only the KD term.
    """

    def __init__(self, tau: float = 4.0, lam: float = 1.0) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError("tau must be positive")
        if lam < 0:
            raise ValueError("lam must not be negative")
        self.tau = tau
        self.lam = lam

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
            log_p_student = F.log_softmax(student_logits / self.tau, dim=1)
            p_teacher = F.softmax(teacher_logits.detach() / self.tau, dim=1)
            kd_loss = F.kl_div(log_p_student, p_teacher, reduction="batchmean") * self.tau**2
        return {"loss": task_loss + self.lam * kd_loss, "task_loss": task_loss, "kd_loss": kd_loss}


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
