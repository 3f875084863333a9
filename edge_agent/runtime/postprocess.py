"""Logits → probabilities, defect score, verdict — or, for a row that is not finite, no verdict at all."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax; a row holding NaN or ±inf comes out NaN (never a confident-looking number)."""
    finite = np.isfinite(logits).all(axis=1, keepdims=True)
    safe = np.where(finite, logits, 0.0)
    shifted = safe - safe.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probs = exp / exp.sum(axis=1, keepdims=True)
    return np.where(finite, probs, np.nan).astype(np.float32)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    label: str
    confidence: float
    defect_score: float
    scores: dict[str, float]


@dataclass(frozen=True)
class Unjudged:
    """The model gave no usable answer for this frame (NaN or ±inf, e.g. an FP16 overflow): fail closed.

    It is never turned into `pass` or `fail`; the agent publishes it as an error event.
    """

    reason: str


def decide(probs: np.ndarray, classes: list[str], good_index: int, threshold: float) -> list[Verdict | Unjudged]:
    """One outcome per row; fail when the defect score 1 - p(good) reaches the threshold.

    `NaN >= threshold` is False, so a naive comparison would pass a frame the model could not judge:
    rows that are not finite become `Unjudged` before any comparison.
    """
    outcomes: list[Verdict | Unjudged] = []
    for row in probs:
        if not np.isfinite(row).all():
            outcomes.append(Unjudged(f"model output is not finite ({', '.join(_non_finite(row))})"))
            continue
        best = int(row.argmax())
        score = float(1.0 - row[good_index])
        outcomes.append(
            Verdict(
                verdict="fail" if score >= threshold else "pass",
                label=classes[best],
                confidence=float(row[best]),
                defect_score=score,
                scores={name: round(float(p), 6) for name, p in zip(classes, row, strict=True)},
            )
        )
    return outcomes


def _non_finite(row: np.ndarray) -> list[str]:
    kinds = []
    if np.isnan(row).any():
        kinds.append("NaN")
    if np.isinf(row).any():
        kinds.append("inf")
    return kinds
