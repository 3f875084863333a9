"""Where a student's training batch gets its view and the teacher's outputs: the one seam for both.

`fit` asks its `Teaching` for the view of each batch the student trains on (and the teacher's logits on
that view when they are known in advance), then for the teacher's logits on the final input when they
are not (a live teacher runs on exactly what the student sees, mixup included). Three kinds:
`NoTeacher` (a teacher or a student alone), `LiveTeacher` (the teacher runs on every batch) and
`CachedTeacher` (the teacher ran once on fixed augmented views; see teacher_cache).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from edge_agent.trainer.teacher_cache import TeacherViews
from edge_agent.trainer.tensors import apply_augment, augment


class Teaching(Protocol):
    teaches: bool  # whether there is a teacher: its distillation term counts only then

    def view(
        self, x01: torch.Tensor, index: torch.Tensor, generator: torch.Generator, augmented: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The batch the student trains on (float NCHW in 0..1) and the teacher's logits on it, if known."""
        ...

    def logits(self, x: torch.Tensor) -> torch.Tensor | None:
        """The teacher's logits on the normalised input the student is about to see (None: no teacher)."""
        ...


class _FreshViews:
    """The student's view is drawn anew for each batch; no teacher's logits come with it."""

    def view(
        self, x01: torch.Tensor, index: torch.Tensor, generator: torch.Generator, augmented: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return (augment(x01, generator) if augmented else x01), None


class NoTeacher(_FreshViews):
    teaches = False

    def logits(self, x: torch.Tensor) -> torch.Tensor | None:
        return None


# Not a NoTeacher: taking a live teacher for "no teacher" once trained its students with λ = 0 (stop 24).
class LiveTeacher(_FreshViews):
    teaches = True

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor | None:
        return self.model(x)


class CachedTeacher:
    """Each row trains on one of its cached views, rebuilt from the stored augmentation parameters, so the
    student sees exactly the image the teacher labelled."""

    teaches = True

    def __init__(self, views: TeacherViews, device: torch.device) -> None:
        self.views, self.device = views, device

    def view(
        self, x01: torch.Tensor, index: torch.Tensor, generator: torch.Generator, augmented: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        params, logits = self.views.pick(index, generator)
        return apply_augment(x01, params), logits.to(self.device)

    def logits(self, x: torch.Tensor) -> torch.Tensor | None:
        raise AssertionError("a cached teacher's logits come with its view")
