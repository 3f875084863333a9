"""`--tune`: choose τ and λ (λ = 0 included) on validation by successive halving within a budget."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edge_agent.runtime.metrics import escape_overkill
from edge_agent.trainer.fit import predict_probs
from edge_agent.trainer.tensors import ImageSet

log = logging.getLogger(__name__)

TAUS = (1.0, 2.0, 4.0)
LAMBDAS = (0.25, 0.5, 1.0)
ETA = 3  # keep the best third at every rung


def escape_at_overkill(is_defect: np.ndarray, scores: np.ndarray, max_overkill: float) -> float:
    """Validation escape at the strictest threshold whose overkill stays within `max_overkill`."""
    best = 1.0
    for t in np.unique(np.concatenate([scores, [1.01]])):
        escape, overkill = escape_overkill(is_defect, scores, float(t))
        if overkill <= max_overkill:
            best = min(best, escape)
    return best


def candidates() -> list[tuple[float, float]]:
    return [(1.0, 0.0)] + [(tau, lam) for tau in TAUS for lam in LAMBDAS]


def rung_epochs(n: int, full_epochs: int, budget: float) -> list[int]:
    """Epochs per rung so that the whole search costs about `budget` full trainings."""
    counts, e = [], 1
    while n > 1:
        counts.append(n)
        n = math.ceil(n / ETA)
    units = sum(c * ETA**i for i, c in enumerate(counts)) or 1
    base = max(1, int(budget * full_epochs / units))
    return [min(full_epochs, base * ETA**i) for i in range(len(counts))] or [e]


def tune_tau_lambda(opts: Any, prep: Any, work: Path, teacher: nn.Module, unlabeled: ImageSet | None) -> dict[str, Any]:
    from edge_agent.trainer.distill import train_student

    is_defect = prep.val.labels.numpy() != prep.splits.good_index
    alive = candidates()
    tried: list[dict[str, Any]] = []
    for rung, epochs in enumerate(rung_epochs(len(alive), opts.epochs, opts.tune_budget)):
        scored = []
        for tau, lam in alive:
            label = f"tune-r{rung}-t{tau:g}-l{lam:g}"
            model, _result = train_student(
                opts, prep, work, teacher if lam > 0 else None, tau, lam, label, epochs=epochs, unlabeled=unlabeled
            )
            probs = predict_probs(model, prep.val.images, prep.norm)
            scores = 1.0 - probs[:, prep.splits.good_index]
            row = {
                "tau": tau,
                "lam": lam,
                "epochs": epochs,
                "rung": rung,
                "val_accuracy": float((probs.argmax(1) == prep.val.labels.numpy()).mean()),
                "val_escape": escape_at_overkill(is_defect, scores, opts.target_overkill),
                "val_overkill": opts.target_overkill,
                "outcome": "dropped",
            }
            scored.append(row)
            tried.append(row)
        scored.sort(key=lambda r: (r["val_escape"], -r["val_accuracy"]))
        keep = max(1, math.ceil(len(scored) / ETA))
        for row in scored[:keep]:
            row["outcome"] = "advanced"
        alive = [(r["tau"], r["lam"]) for r in scored[:keep]]
        log.info("tune rung %d (%d epochs): kept %s", rung, epochs, alive)
        if len(alive) == 1:
            break
    winner = next(r for r in reversed(tried) if (r["tau"], r["lam"]) == alive[0])
    winner["outcome"] = "winner"
    why = (
        f"τ = {winner['tau']:g}, λ = {winner['lam']:g} had the lowest validation escape at ≤ "
        f"{opts.target_overkill:.0%} overkill ({winner['val_escape']:.1%}), then the best accuracy "
        f"({winner['val_accuracy']:.1%}), in the last rung ({winner['epochs']} epochs)."
    )
    if winner["lam"] == 0:
        why += " λ = 0 won: on this data the teacher does not help the student, and the student is trained alone."
    return {
        "candidates": tried,
        "winner": {"tau": winner["tau"], "lam": winner["lam"]},
        "why": why,
        "objective": f"val escape at overkill <= {opts.target_overkill}, then val accuracy",
    }
