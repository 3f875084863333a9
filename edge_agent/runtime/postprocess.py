"""Logits → probabilities, defect score, verdict."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    label: str
    confidence: float
    defect_score: float
    scores: dict[str, float]


def decide(probs: np.ndarray, classes: list[str], good_index: int, threshold: float) -> list[Verdict]:
    """One Verdict per row; fail when the defect score 1 - p(good) reaches the threshold."""
    defect_scores = 1.0 - probs[:, good_index]
    top = probs.argmax(axis=1)
    verdicts = []
    for row, score, best in zip(probs, defect_scores, top, strict=True):
        verdicts.append(
            Verdict(
                verdict="fail" if score >= threshold else "pass",
                label=classes[int(best)],
                confidence=float(row[best]),
                defect_score=float(score),
                scores={name: round(float(p), 6) for name, p in zip(classes, row, strict=True)},
            )
        )
    return verdicts
