"""`--tune`: choose τ and λ (λ = 0 included) on validation by successive halving within a budget."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edge_agent.runtime.metrics import escape_overkill
from edge_agent.trainer.fit import FitResult, predict_probs
from edge_agent.trainer.teacher_cache import TeacherViews
from edge_agent.trainer.tensors import ImageSet

log = logging.getLogger(__name__)

TAUS = (1.0, 2.0, 4.0)
LAMBDAS = (0.25, 0.5, 1.0)
ETA = 3  # keep the best third at every rung


def rank(row: dict[str, Any]) -> tuple[float, float]:
    return (row["val_escape"], -row["val_accuracy"])


def escape_at_overkill(is_defect: np.ndarray, scores: np.ndarray, max_overkill: float) -> float:
    """Validation escape at the strictest threshold whose overkill stays within `max_overkill`."""
    best = 1.0
    for t in np.unique(np.concatenate([scores, [1.01]])):
        escape, overkill = escape_overkill(is_defect, scores, float(t))
        if overkill <= max_overkill:
            best = min(best, escape)
    return best


REFERENCE = (1.0, 0.0)  # λ = 0: the student alone, the bar every distillation candidate must clear


def candidates() -> list[tuple[float, float]]:
    return [REFERENCE] + [(tau, lam) for tau in TAUS for lam in LAMBDAS]


def teacher_earns_its_place(kd: dict[str, Any], reference: dict[str, Any], n_val: int) -> str | None:
    """Why the distilled candidate beats the student alone, or None when it does not.

    Escape comes first: fewer validation escapes win unless the candidate is clearly less accurate —
    by more than the sampling error of the validation accuracy (at least two images), so that a lucky
    escape figure bought with a worse classifier (a teacher trained on shuffled labels) is refused.
    With the same escape, the candidate must get at least two more validation images right: on small
    validation sets a tie goes to the simpler model."""
    accuracy = reference["val_accuracy"]
    two_images = 2 / max(1, n_val)
    noise = max(two_images, math.sqrt(accuracy * (1 - accuracy) / max(1, n_val)))
    eps = 1e-9  # float rounding
    if kd["val_escape"] < reference["val_escape"] - eps and kd["val_accuracy"] >= accuracy - noise - eps:
        return (
            f"fewer validation escapes than the student alone ({kd['val_escape']:.1%} vs "
            f"{reference['val_escape']:.1%}) at accuracy {kd['val_accuracy']:.1%} vs {accuracy:.1%} "
            f"(within the ±{noise:.1%} sampling error of {n_val} validation images)"
        )
    if abs(kd["val_escape"] - reference["val_escape"]) < eps and kd["val_accuracy"] >= accuracy + two_images - eps:
        return (
            f"the same validation escape as the student alone ({kd['val_escape']:.1%}) and higher accuracy "
            f"({kd['val_accuracy']:.1%} vs {accuracy:.1%})"
        )
    return None


def rung_epochs(n: int, full_epochs: int, budget: float) -> list[int]:
    """Epochs per rung. The last rung trains the two finalists (the best distilled candidate and the
    student alone) for the full `full_epochs`, so the choice is made at the budget that ships and the
    winner *is* the final student; the earlier rungs share what is left of `budget` full trainings,
    growing by ETA."""
    counts = []
    while n > 1:
        counts.append(n)
        n = math.ceil(n / ETA)
    if not counts:
        return [full_epochs]
    early = counts[:-1]
    spare = max(0.0, budget - counts[-1]) * full_epochs
    units = sum(c * ETA**i for i, c in enumerate(early)) or 1
    base = max(1, int(spare / units))
    return [min(full_epochs, base * ETA**i) for i in range(len(early))] + [full_epochs]


@dataclass
class Tuned:
    """What `--tune` decided, with the two finalists it trained for the full budget."""

    report: dict[str, Any]
    winner: tuple[nn.Module, FitResult]
    reference: tuple[nn.Module, FitResult]  # the student alone (λ = 0), i.e. the baseline


def tune_tau_lambda(
    opts: Any,
    prep: Any,
    work: Path,
    teacher: nn.Module,
    unlabeled: ImageSet | None,
    teacher_views: TeacherViews | None = None,
) -> Tuned:
    from edge_agent.trainer.distill import train_student

    is_defect = prep.val.labels.numpy() != prep.splits.good_index
    distilled = [c for c in candidates() if c != REFERENCE]
    tried: list[dict[str, Any]] = []

    models: dict[tuple[float, float], tuple[nn.Module, FitResult]] = {}

    def score(tau: float, lam: float, rung: int, epochs: int) -> dict[str, Any]:
        model, result = train_student(
            opts,
            prep,
            work,
            teacher if lam > 0 else None,
            tau,
            lam,
            f"tune-r{rung}-t{tau:g}-l{lam:g}",
            epochs=epochs,
            unlabeled=unlabeled,
            teacher_views=teacher_views,
        )
        probs = predict_probs(model, prep.val.images, prep.norm)
        row = {
            "tau": tau,
            "lam": lam,
            "epochs": epochs,
            "rung": rung,
            "val_accuracy": float((probs.argmax(1) == prep.val.labels.numpy()).mean()),
            "val_escape": escape_at_overkill(is_defect, 1.0 - probs[:, prep.splits.good_index], opts.target_overkill),
            "val_overkill": opts.target_overkill,
            "outcome": "dropped",
        }
        tried.append(row)
        models[(tau, lam)] = (model, result)
        return row

    schedule = rung_epochs(len(distilled) + 1, opts.epochs, opts.tune_budget)
    for rung, epochs in enumerate(schedule):
        models.clear()  # only the rung that decides keeps its models: the finalists
        # The student alone runs at every rung, so the last comparison is at equal epochs.
        reference = score(*REFERENCE, rung, epochs)
        ranked = sorted((score(tau, lam, rung, epochs) for tau, lam in distilled), key=rank)
        if rung == len(schedule) - 1 or len(ranked) == 1:
            break
        keep = max(1, math.ceil(len(ranked) / ETA))
        for row in (reference, *ranked[:keep]):
            row["outcome"] = "advanced"
        distilled = [(r["tau"], r["lam"]) for r in ranked[:keep]]
        log.info("tune rung %d (%d epochs): kept %s and the student alone", rung, epochs, distilled)
    best = ranked[0]
    reason = teacher_earns_its_place(best, reference, len(is_defect))
    winner = best if reason else reference
    winner["outcome"] = "winner"
    best_name = f"τ = {best['tau']:g}, λ = {best['lam']:g}"
    if reason:
        why = f"{best_name} won ({winner['epochs']} epochs): {reason}."
    else:
        why = (
            f"λ = 0 won: the best distilled candidate, {best_name}, did not beat the student alone on validation "
            f"(escape {best['val_escape']:.1%} vs {reference['val_escape']:.1%}, accuracy "
            f"{best['val_accuracy']:.1%} vs {reference['val_accuracy']:.1%} after {winner['epochs']} epochs). "
            "On this data the teacher does not help, and the student is trained alone."
        )
    log.info("tune: %s", why)
    report = {
        "candidates": tried,
        "winner": {"tau": winner["tau"], "lam": winner["lam"]},
        "why": why,
        "objective": (
            f"val escape at overkill <= {opts.target_overkill}, then val accuracy; a distilled candidate must beat "
            "the student alone (λ = 0): fewer escapes unless clearly less accurate (beyond the validation sampling "
            "error), or the same escape and two more images right"
        ),
        "final": "the winner of the last rung, trained for the full epochs, is the shipped student",
    }
    return Tuned(report, models[(winner["tau"], winner["lam"])], models[REFERENCE])
