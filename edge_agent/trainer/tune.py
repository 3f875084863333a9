"""`--tune`: choose τ and λ (λ = 0 included) on validation by successive halving within a budget.

Inspection validation sets are small (a few dozen good parts), so two habits keep the choice honest:
each candidate is judged on the mean of its validation predictions over the last epochs of its cosine
schedule (not on its luckiest epoch), and two models are compared image by image, a difference counting
only beyond its own sampling error (see `Gap`). Within that error the decision falls back on a prior: a
teacher at least as accurate as the student alone is used with the recipe asked for (`--tau`/`--lam`,
default τ = 2, λ = 1, measured in benchmarks/recipe_ablation.py), and λ = 0 ships only when distillation is
clearly worse; a teacher clearly less accurate than the student alone must win by twice the sampling
error to be used (a win by one error happens by chance about one time in six, and there the prior is
against the teacher).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from edge_agent.runtime.metrics import caught_at_overkill, escape_rate
from edge_agent.trainer.fit import FitResult, predict_probs
from edge_agent.trainer.paired import Gap
from edge_agent.trainer_options import DistillOptions

log = logging.getLogger(__name__)

TAUS = (2.0, 4.0)
LAMBDAS = (0.5, 1.0, 2.0)
ETA = 3  # keep the best third at every early rung
REFERENCE = (1.0, 0.0)  # λ = 0: the student alone, the bar every distillation candidate must clear
DEFAULT = (DistillOptions.tau, DistillOptions.lam)  # the CLI's recipe; the anchor when --lam is 0
FINALISTS = 3  # the student alone, the anchor and the best challenger train for the full epochs
DISTRUST = 2.0  # sampling errors a distilled student must win by when its teacher is worse than the student alone


def anchor_of(tau: float, lam: float) -> tuple[float, float]:
    """The distillation recipe the user asked for (or the default), which the search must beat."""
    return (tau, lam) if lam > 0 else DEFAULT


def challengers(anchor: tuple[float, float]) -> list[tuple[float, float]]:
    return [(tau, lam) for tau in TAUS for lam in LAMBDAS if (tau, lam) != anchor]


@dataclass
class Scored:
    """A candidate's validation figures (on its tail-mean predictions) and its per-image outcomes."""

    row: dict[str, Any]
    correct: np.ndarray  # per validation image
    caught: np.ndarray  # per defective validation image, at this model's threshold for the target overkill


def clearly_better(a: Scored, b: Scored, errors: float = 1.0) -> bool:
    """Escape first, then accuracy: fewer escapes unless clearly less accurate, or as few escapes and
    clearly more accurate — each difference beyond `errors` times its sampling error."""
    caught, correct = Gap.of(a.caught, b.caught, errors), Gap.of(a.correct, b.correct, errors)
    if caught.clearly_up:
        return not correct.clearly_down
    return not caught.clearly_down and correct.clearly_up


def versus(a: Scored, b: Scored) -> str:
    """'escape 5.0% vs 8.1% (±2.3%), accuracy 80.0% vs 78.1% (±1.9%)' for the report."""
    caught, correct = Gap.of(a.caught, b.caught), Gap.of(a.correct, b.correct)
    ra, rb = a.row, b.row
    return (
        f"escape {ra['val_escape']:.1%} vs {rb['val_escape']:.1%} (±{caught.margin:.1%}), "
        f"accuracy {ra['val_accuracy']:.1%} vs {rb['val_accuracy']:.1%} (±{correct.margin:.1%})"
    )


def decide(
    reference: Scored, anchor: Scored, challenger: Scored | None, teacher_correct: np.ndarray
) -> tuple[Scored, str]:
    """The shipped candidate among the finalists, and why (one paragraph for the report and the CLI)."""

    def name(s: Scored) -> str:
        return f"τ = {s.row['tau']:g}, λ = {s.row['lam']:g}"

    kd, why_kd = anchor, ""
    if challenger is not None and clearly_better(challenger, anchor):
        kd, why_kd = challenger, f" It beat the recipe asked for, {name(anchor)}: {versus(challenger, anchor)}."
    teacher_gap = Gap.of(teacher_correct, reference.correct)
    teacher_acc = float(teacher_correct.mean())
    ref_acc = reference.row["val_accuracy"]
    if teacher_gap.clearly_down:
        if clearly_better(kd, reference, DISTRUST):
            return kd, (
                f"{name(kd)} won although the teacher is less accurate than the student alone on validation "
                f"({teacher_acc:.1%} vs {ref_acc:.1%}): the distilled student is better by twice the sampling error, "
                f"{versus(kd, reference)}.{why_kd}"
            )
        return reference, (
            f"λ = 0 won: the teacher is clearly less accurate than the student alone on validation "
            f"({teacher_acc:.1%} vs {ref_acc:.1%}) and the best distilled candidate, {name(kd)}, was not better by "
            f"twice the sampling error ({versus(kd, reference)}). On this data the teacher does not help; "
            "the student is trained alone."
        )
    if clearly_better(reference, kd):
        return reference, (
            f"λ = 0 won: the best distilled candidate, {name(kd)}, is clearly worse than the student alone on "
            f"validation ({versus(kd, reference)}). On this data the teacher does not help at these settings; the "
            "student is trained alone."
        )
    behind = [
        f"{what} ({'beyond' if gap.clearly_down else 'within'} the sampling error)"
        for what, gap in (
            ("accuracy", Gap.of(kd.correct, reference.correct)),
            ("escape", Gap.of(kd.caught, reference.caught)),
        )
        if gap.diff < 0
    ]
    caveat = (
        f" NOTE: on validation it is behind the student alone on {' and '.join(behind)}; compare them in the "
        "table below (the baseline is the student alone)."
        if behind
        else ""
    )
    standing = "clearly better than" if clearly_better(kd, reference) else "not clearly worse than"
    return kd, (
        f"{name(kd)} won: the teacher is at least as accurate as the student alone on validation "
        f"({teacher_acc:.1%} vs {ref_acc:.1%}) and the distilled student is {standing} the student alone "
        f"({versus(kd, reference)}).{why_kd}{caveat}"
    )


def rung_epochs(n: int, full_epochs: int, budget: float) -> list[int]:
    """Epochs of the early rungs that race `n` challengers down to one, then `full_epochs` for the final
    rung, where FINALISTS models train for the full budget (so the winner ships as it is). The early rungs
    share what is left of `budget` full trainings, each ETA times longer than the last."""
    counts = []
    while n > 1:
        counts.append(n)
        n = math.ceil(n / ETA)
    if not counts:
        return [full_epochs]
    spare = max(0.0, budget - FINALISTS) * full_epochs
    units = sum(c * ETA**i for i, c in enumerate(counts))
    base = max(1, int(spare / units))
    return [min(full_epochs, base * ETA**i) for i in range(len(counts))] + [full_epochs]


def tail(epochs: int) -> int:
    """Epochs whose validation predictions are averaged: the last tenth of the schedule (at least one)."""
    return max(1, epochs // 10)


@dataclass
class Tuned:
    """What `--tune` decided, with the finalists it trained for the full budget."""

    report: dict[str, Any]
    winner: tuple[nn.Module, FitResult]
    reference: tuple[nn.Module, FitResult]  # the student alone (λ = 0), i.e. the baseline
    finalists: dict[tuple[float, float], tuple[nn.Module, FitResult]]  # (τ, λ) → trained for the full epochs


# train(tau, lam, label, epochs, keep_val_probs) -> (model, fit result): one candidate, trained by the caller
# (distill passes its own train_student; tests pass a fake). λ = 0 means no teacher.
TrainCandidate = Callable[[float, float, str, int, int], tuple[nn.Module, FitResult]]


def tune_tau_lambda(train: TrainCandidate, opts: Any, prep: Any, teacher: nn.Module) -> Tuned:
    """The race: short runs of every challenger with early elimination, then the student alone, the recipe
    asked for and the best challenger at the full epochs, decided image by image on validation."""
    labels = prep.val.labels.numpy()
    is_defect = labels != prep.splits.good_index
    anchor = anchor_of(opts.tau, opts.lam)
    tried: list[dict[str, Any]] = []
    models: dict[tuple[float, float], tuple[nn.Module, FitResult]] = {}

    def score(tau: float, lam: float, rung: int, epochs: int) -> Scored:
        model, result = train(tau, lam, f"tune-r{rung}-t{tau:g}-l{lam:g}", epochs, tail(epochs))
        # A checkpoint written before val_probs existed (--resume) falls back to the shipped weights.
        probs = (
            np.mean(result.val_probs, axis=0) if result.val_probs else predict_probs(model, prep.val.images, prep.norm)
        )
        caught = caught_at_overkill(is_defect, 1.0 - probs[:, prep.splits.good_index], opts.target_overkill)
        row = {
            "tau": tau,
            "lam": lam,
            "epochs": epochs,
            "rung": rung,
            "val_accuracy": float((probs.argmax(1) == labels).mean()),
            "val_escape": escape_rate(caught),
            "val_overkill": opts.target_overkill,
            "best_val_accuracy": result.best_val_accuracy,
            "outcome": "dropped",
        }
        tried.append(row)
        models[(tau, lam)] = (model, result)
        return Scored(row, probs.argmax(1) == labels, caught)

    racing = challengers(anchor)
    schedule = rung_epochs(len(racing), opts.epochs, opts.tune_budget)
    for rung, epochs in enumerate(schedule[:-1]):
        ranked = sorted(
            (score(t, lam, rung, epochs) for t, lam in racing),
            key=lambda s: (s.row["val_escape"], -s.row["val_accuracy"]),
        )
        keep = max(1, math.ceil(len(ranked) / ETA))
        for s in ranked[:keep]:
            s.row["outcome"] = "advanced"
        racing = [(s.row["tau"], s.row["lam"]) for s in ranked[:keep]]
        log.info("tune rung %d (%d epochs): kept %s", rung, epochs, racing)
    final = len(schedule) - 1
    models.clear()  # only the finalists' models are kept
    reference = score(*REFERENCE, final, opts.epochs)
    anchored = score(*anchor, final, opts.epochs)
    challenger = score(*racing[0], final, opts.epochs) if racing and racing[0] != anchor else None
    teacher_correct = predict_probs(teacher, prep.val.images, prep.norm).argmax(1) == labels
    winner, why = decide(reference, anchored, challenger, teacher_correct)
    winner.row["outcome"] = "winner"
    log.info("tune: %s", why)
    report = {
        "candidates": tried,
        "winner": {"tau": winner.row["tau"], "lam": winner.row["lam"]},
        "why": why,
        "objective": (
            f"val escape at overkill <= {opts.target_overkill}, then val accuracy, on the mean of each candidate's "
            "predictions over the last tenth of its epochs; the student alone (λ = 0), the recipe asked for and the "
            "best of the short runs are compared at the full epochs, image by image, a difference counting only "
            "beyond its sampling error; within it, distillation ships when the teacher is at least as accurate "
            "as the student alone"
        ),
        "final": "the winner of the last rung, trained for the full epochs, is the shipped student",
    }
    return Tuned(report, models[(winner.row["tau"], winner.row["lam"])], models[REFERENCE], dict(models))
