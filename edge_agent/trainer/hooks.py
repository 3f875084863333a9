"""Epoch-end hooks of `fit`: each sees the finished epoch and may say why training should stop.

They read what the epoch loop keeps (`FitResult.history`, the validation probabilities) and nothing
else, so a resumed run rebuilds their state from its checkpoint's history.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edge_agent.trainer import distributed
from edge_agent.trainer.checkpoint import save_atomically

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cooldown:
    """The epochs after a validation plateau that take the learning rate linearly down to 0 before stopping:
    a long budget stopped halfway down its cosine would otherwise ship weights trained at half its peak rate
    (stop 29: a 90-epoch ResNet-18 stopped at epoch 45, fitting 95 % of its training images where the
    30-epoch run, annealed to the end, fit 97 %)."""

    first_epoch: int
    epochs: int
    why: str  # the plateau that started it

    @property
    def last_epoch(self) -> int:
        return self.first_epoch + self.epochs - 1

    def factor(self, epoch: int, steps_done: int, steps_per_epoch: int) -> float:
        """What the scheduled rate is multiplied by after `steps_done` steps of `epoch`: 1 before the first
        cooling step, 0 after the last."""
        done = (epoch - self.first_epoch) * steps_per_epoch + steps_done
        return min(1.0, max(0.0, 1.0 - done / (self.epochs * steps_per_epoch)))


@dataclass
class FitResult:
    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch (see fit.epoch_row)
    best_epoch: int = 0
    best_val_accuracy: float = 0.0
    best_val_loss: float = float("inf")
    best_state: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    stopped_early: str | None = None  # why the epoch loop ended before its last epoch
    cooldown: Cooldown | None = None  # set on a validation plateau when the rate is to be brought down first
    val_probs: list[np.ndarray] = field(default_factory=list)  # the last `keep_val_probs` epochs'


@dataclass
class EpochEnd:
    epoch: int
    row: dict[str, float]
    val_probs: np.ndarray


# A hook: the result so far and the epoch just finished → a reason to stop, or None.
Hook = Callable[[FitResult, EpochEnd], str | None]


def keep_best(result: FitResult, end: EpochEnd) -> str | None:
    """The weights of the best validation epoch (accuracy, then loss on a tie) are what `fit` returns."""
    acc, loss = end.row["val_accuracy"], end.row["val_loss"]
    better = acc > result.best_val_accuracy or (acc == result.best_val_accuracy and loss < result.best_val_loss)
    if better or not result.best_state:
        result.best_epoch, result.best_val_accuracy, result.best_val_loss = end.epoch, acc, loss
        result.best_state = copy.deepcopy(result.model.state_dict())
    return None


def keep_val_probs(last: int) -> Hook:
    """Keep the validation probabilities of the last `last` epochs run (--tune averages them)."""

    def hook(result: FitResult, end: EpochEnd) -> str | None:
        if last > 0:
            result.val_probs = [*result.val_probs, end.val_probs][-last:]
        return None

    return hook


def epochs_without_progress(history: list[dict[str, float]], min_loss_drop: float = 0.01) -> int:
    """Epochs since validation last made progress: a new best accuracy, or a validation loss at least
    `min_loss_drop` (relative) under the best so far. Loss counts because accuracy on a few hundred
    images moves in coarse steps while the model still improves."""
    best_acc, best_loss, last = -1.0, float("inf"), 0
    for row in history:
        progressed = row["val_accuracy"] > best_acc or row["val_loss"] < best_loss * (1 - min_loss_drop)
        best_acc, best_loss = max(best_acc, row["val_accuracy"]), min(best_loss, row["val_loss"])
        if progressed:
            last = int(row["epoch"])
    return int(history[-1]["epoch"]) - last if history else 0


def rate_share(history: list[dict[str, float]], at: int = -1) -> float | None:
    """The learning rate after the epoch at index `at` as a share of the highest in `history`; None for a
    history without rates."""
    rates = [row.get("lr", 0.0) for row in history]
    peak = max(rates, default=0.0)
    return rates[at] / peak if peak > 0 else None


def already_cooled(history: list[dict[str, float]], fraction: float = 0.1) -> bool:
    """Whether the schedule has already brought the rate under `fraction` of its peak: a plateau there is
    the model's own, and a cool-down would only spend epochs (a 30-epoch student at epoch 27: 3 %)."""
    share = rate_share(history)
    return share is None or share <= fraction


def mean_training_fit(history: list[dict[str, float]], window: int) -> float:
    """Mean training accuracy of the last `window` epochs (1.0 for a history without it: no floor to hold)."""
    fits = [row["train_accuracy"] for row in history if "train_accuracy" in row][-max(1, window) :]
    return sum(fits) / len(fits) if fits else 1.0


def held_by_floor(history: list[dict[str, float]], patience: int, fit_floor: float) -> list[int]:
    """The epochs at which early stopping met a validation plateau and went on only because the model fitted
    under `fit_floor` of its training images (the mean of the last `patience` epochs) — a model that stalls
    rather than one that has finished (the report's advice reads them; `early_stopping` applies the same test)."""
    if patience <= 0:
        return []
    return [
        int(history[end - 1]["epoch"])
        for end in range(1, len(history) + 1)
        if epochs_without_progress(history[:end]) >= patience and mean_training_fit(history[:end], patience) < fit_floor
    ]


def training_fit_rising(history: list[dict[str, float]], window: int, min_rise: float = 0.01) -> bool:
    """Whether the model still fits its training images better: the mean training accuracy of the last
    `window` epochs over the mean of the `window` before (fewer where the run is shorter) by at least
    `min_rise` and twice the sampling error of that difference on the epochs' training images. A validation
    plateau while it rises is a few hundred images' noise, not the end of learning: in stop 30 a ResNet-18
    on `trainer synth`, fitting 75 % of its training images and climbing, stopped at epoch 31 of 90 (82.5 %
    on test) where the reference's teacher reached 97 %."""
    rows = [row for row in history if "train_accuracy" in row]
    window = min(window, len(rows) // 2)
    if window < 1:
        return False
    recent, before = rows[-window:], rows[-2 * window : -window]
    now = sum(row["train_accuracy"] for row in recent) / window
    then = sum(row["train_accuracy"] for row in before) / window
    images = min(row.get("train_images", 0.0) for row in recent + before)  # 0: a history from before stop 30
    p = (now + then) / 2
    noise = 2.0 * math.sqrt(2.0 * p * (1.0 - p) / (images * window)) if images else 0.0
    return now - then >= max(min_rise, noise)


def early_stopping(patience: int, label: str, cooldown: int = 0, budget: int = 0, fit_floor: float = 0.0) -> Hook:
    """Stop when validation has not progressed for `patience` epochs (0: never), the model fits at least
    `fit_floor` of its training images (the mean of as many epochs) and that fit has stopped rising (see
    `training_fit_rising`), after `cooldown` more epochs that bring the learning rate down to 0 (fewer where
    the `budget` of epochs ends sooner; none where the schedule has already cooled it). A plateau that does
    not count is logged once per `patience` epochs."""

    def hook(result: FitResult, end: EpochEnd) -> str | None:
        if result.cooldown is not None:
            if end.epoch < result.cooldown.last_epoch or end.epoch >= budget:
                return None  # still cooling, or the budget ends here anyway
            reason = f"{result.cooldown.why}, then {result.cooldown.epochs} epochs cooling the rate to 0"
        else:
            stale = epochs_without_progress(result.history)
            if patience <= 0 or stale < patience:
                return None
            why = f"no validation progress for {stale} epochs (--patience {patience})"
            fit_share = mean_training_fit(result.history, patience)
            going_on = None
            if fit_share < fit_floor:
                # A slow learner stalls below its fit for a dozen epochs before it rises (stop 30, synth: a
                # ResNet-18 at 73-80 % stopped at 75.5 % on test; the whole budget gave 87.5 %).
                going_on = f"it fits {fit_share:.1%} of its training images (under --fit-floor {fit_floor:g})"
            elif training_fit_rising(result.history, patience):
                going_on = "it still fits its training images better"
            if going_on is not None:
                if stale % patience == 0:
                    log.info("%s: %s, but %s: going on", label, why, going_on)
                return None
            if cooldown > 0 and end.epoch < budget and not already_cooled(result.history):
                epochs = min(cooldown, budget - end.epoch)
                result.cooldown = Cooldown(end.epoch + 1, epochs, why)
                log.info(
                    "%s: %s after epoch %d: the learning rate goes down to 0 over %d epochs, then training stops",
                    label, why, end.epoch, epochs,
                )  # fmt: skip
                return None
            reason = why
        reason = (
            f"early stop after epoch {end.epoch}: {reason}; best epoch {result.best_epoch}, "
            f"val acc {result.best_val_accuracy:.3f}"
        )
        log.info("%s: %s", label, reason)
        return reason

    return hook


def save_checkpoint(path: Path, state_of: Callable[[], dict[str, Any]]) -> Hook:
    """After every epoch, what --resume needs (rank 0 only: the copies hold the same weights)."""

    def hook(result: FitResult, end: EpochEnd) -> str | None:
        if distributed.is_main():
            path.parent.mkdir(parents=True, exist_ok=True)
            save_atomically(state_of(), path)
        return None

    return hook


def time_to_fraction(history: list[dict[str, float]], fraction: float = 0.95) -> dict[str, float] | None:
    """The first epoch whose validation accuracy reached `fraction` of the best, with the training
    seconds spent until then: how much of the budget the model actually needed."""
    if not history:
        return None
    target = fraction * max(row["val_accuracy"] for row in history)
    spent = 0.0
    for row in history:
        spent += row["seconds"]
        if row["val_accuracy"] >= target:
            return {"epoch": int(row["epoch"]), "seconds": round(spent, 1), "of_epochs": len(history)}
    return None
