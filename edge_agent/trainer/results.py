"""What a trained model's results look like in report.json, as a typed record."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from edge_agent.trainer.hooks import FitResult, held_by_floor, rate_share, time_to_fraction
from edge_agent.trainer.models import count_params, stem_stride


@dataclass
class ModelSummary:
    arch: str
    params: int
    stem_stride: int  # 1: the first convolution keeps full resolution; 2: torchvision's stem
    test_accuracy: float
    escape_rate: float
    overkill_rate: float
    per_class: dict[str, Any]
    best_epoch: int | None  # None: loaded, not trained in this run
    best_val_accuracy: float | None
    epochs_run: int | None
    final_train_accuracy: float | None  # on its augmented training images, last epoch: low = under-fitted
    train_seconds: float | None
    stopped_early: str | None  # why training ended before its last epoch (early stopping), if it did
    time_to_95: dict[str, float] | None  # first epoch at 95 % of the best validation accuracy, seconds until then
    # The epochs early stopping met a plateau but went on because the model fitted under --fit-floor, and its
    # training accuracy over them: a model that stalls (see `stall`).
    stalled_under_floor: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stall(history: list[dict[str, float]], patience: int, fit_floor: float) -> dict[str, Any] | None:
    """Where a plateau was held by the fit floor: how many epochs, the first and last, the training accuracy
    over them and `rate`, the learning rate at the first as a share of the run's highest (a stall at the
    cosine's peak or one as the budget runs out: the report advises differently); None where early stopping
    never met one."""
    held = held_by_floor(history, patience, fit_floor)
    if not held:
        return None
    fits = [row["train_accuracy"] for row in history if int(row["epoch"]) in held]
    found: dict[str, Any] = {
        "epochs": len(held),
        "first_epoch": held[0],
        "last_epoch": held[-1],
        "train_accuracy": [round(min(fits), 4), round(max(fits), 4)],
    }
    first = next(i for i, row in enumerate(history) if int(row["epoch"]) == held[0])
    share = rate_share(history, first)
    if share is not None:  # a history without rates says nothing of it
        found["rate"] = round(share, 3)
    return found


def summarize(
    arch: str,
    model: nn.Module,
    evaluation: dict[str, Any],
    result: FitResult | None,
    patience: int = 0,
    fit_floor: float = 0.0,
) -> ModelSummary:
    """`patience` and `fit_floor`: the early stopping the model was trained under (for `stalled_under_floor`)."""
    history = result.history if result else []
    return ModelSummary(
        arch=arch,
        params=count_params(model),
        stem_stride=stem_stride(model),
        test_accuracy=evaluation["accuracy"],
        escape_rate=evaluation["escape_rate"],
        overkill_rate=evaluation["overkill_rate"],
        per_class=evaluation["per_class"],
        best_epoch=result.best_epoch if result else None,
        best_val_accuracy=result.best_val_accuracy if result else None,
        epochs_run=len(history) if result else None,
        final_train_accuracy=history[-1]["train_accuracy"] if history else None,
        train_seconds=round(sum(row["seconds"] for row in history), 1) if result else None,
        stopped_early=result.stopped_early if result else None,
        time_to_95=time_to_fraction(history) if result else None,
        stalled_under_floor=stall(history, patience, fit_floor),
    )
