"""Inspection metrics (escape, overkill, per class) and threshold calibration on the defect score."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import numpy as np

log = logging.getLogger(__name__)


def escape_overkill(is_defect: np.ndarray, defect_scores: np.ndarray, threshold: float) -> tuple[float, float]:
    """Escape: share of defective images judged pass. Overkill: share of good images judged fail."""
    fail = defect_scores >= threshold
    n_defect, n_good = int(is_defect.sum()), int((~is_defect).sum())
    escape = float((~fail & is_defect).sum() / n_defect) if n_defect else 0.0
    overkill = float((fail & ~is_defect).sum() / n_good) if n_good else 0.0
    return escape, overkill


def fail_threshold(is_defect: np.ndarray, scores: np.ndarray, max_overkill: float) -> float:
    """The lowest threshold (parts scoring at or above it fail) whose overkill stays within `max_overkill`."""
    good = np.sort(scores[~is_defect])[::-1]
    allowed = math.floor(max_overkill * len(good) + 1e-9)  # good parts that may fail
    if allowed >= len(good):
        return -math.inf
    return float(np.nextafter(good[allowed], math.inf))


def caught_at_overkill(is_defect: np.ndarray, scores: np.ndarray, max_overkill: float) -> np.ndarray:
    """For each defective image, whether it fails at the strictest threshold within `max_overkill`."""
    return scores[is_defect] >= fail_threshold(is_defect, scores, max_overkill)


def escape_rate(caught: np.ndarray) -> float:
    return float(1 - caught.mean()) if len(caught) else 0.0


def escape_at_overkill(is_defect: np.ndarray, scores: np.ndarray, max_overkill: float) -> float:
    """The lowest escape rate reachable while failing at most `max_overkill` of the good parts: how two
    models compare at the same cost in good parts, whatever thresholds they were calibrated to."""
    return escape_rate(caught_at_overkill(is_defect, scores, max_overkill))


@dataclass(frozen=True)
class Calibration:
    threshold: float
    escape_rate: float
    overkill_rate: float
    target_met: bool
    note: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % interval of a rate seen as k of n (Wilson score): what a validation escape rate can promise."""
    if n <= 0:
        return 0.0, 1.0
    p, z2 = k / n, z * z
    center = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, center - half), min(1.0, center + half)


def _escape_spread(is_defect: np.ndarray, scores: np.ndarray, threshold: float) -> str:
    """'6 of 128 defective validation images pass; the true rate may be 2.2–9.8 % (95 %)'."""
    n = int(is_defect.sum())
    k = int((is_defect & (scores < threshold)).sum())
    lo, hi = wilson_interval(k, n)
    return f"{k} of {n} defective validation images pass; the true rate may be {lo:.1%}–{hi:.1%} (95 %)"


def calibrate_threshold(is_defect: np.ndarray, defect_scores: np.ndarray, max_escape: float = 0.01) -> Calibration:
    """Lowest overkill whose escape stays within `max_escape`; never the degenerate reject-everything.

    Candidate thresholds sit halfway between neighbouring distinct scores, so the chosen one does
    not sit exactly on a validation image.
    """
    is_defect = np.asarray(is_defect, dtype=bool)
    scores = np.asarray(defect_scores, dtype=np.float64)
    if not is_defect.any() or is_defect.all():
        which = "defect" if not is_defect.any() else "good"
        note = f"validation split has no {which} images: threshold kept at 0.5"
        log.warning(note)
        escape, overkill = escape_overkill(is_defect, scores, 0.5)
        return Calibration(0.5, escape, overkill, False, note)
    distinct = np.unique(scores)
    candidates = np.concatenate([[distinct[0] / 2], (distinct[:-1] + distinct[1:]) / 2, [(distinct[-1] + 1) / 2]])
    rows = []
    for t in candidates:
        escape, overkill = escape_overkill(is_defect, scores, float(t))
        if overkill < 1.0:  # failing every good part is not a threshold, it is a stopped line
            rows.append((float(t), escape, overkill))
    within = [r for r in rows if r[1] <= max_escape + 1e-12]
    if within:
        t, escape, overkill = min(within, key=lambda r: (r[2], r[1], -r[0]))
        note = f"escape {escape:.3f} <= target {max_escape:.3f}: {_escape_spread(is_defect, scores, t)}"
        return Calibration(t, escape, overkill, True, note)
    t, escape, overkill = min(rows, key=lambda r: (r[1], r[2]))
    note = (
        f"no threshold keeps validation escape <= {max_escape:.3f} without failing every good part; "
        f"took the lowest-escape threshold (escape {escape:.3f}, overkill {overkill:.3f}): "
        f"{_escape_spread(is_defect, scores, t)}"
    )
    log.warning(note)
    return Calibration(t, escape, overkill, False, note)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def classification_report(
    y_true: np.ndarray, probs: np.ndarray, classes: list[str], good_index: int, threshold: float
) -> dict[str, object]:
    """Accuracy, escape/overkill at `threshold`, per-class precision/recall/escape, confusion matrix."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = probs.argmax(axis=1)
    scores = 1.0 - probs[:, good_index]
    is_defect = y_true != good_index
    fail = scores >= threshold
    escape, overkill = escape_overkill(is_defect, scores, threshold)
    matrix = confusion_matrix(y_true, y_pred, len(classes))
    per_class: dict[str, dict[str, float | int | None]] = {}
    for i, name in enumerate(classes):
        support = int(matrix[i].sum())
        predicted = int(matrix[:, i].sum())
        entry: dict[str, float | int | None] = {
            "support": support,
            "precision": float(matrix[i, i] / predicted) if predicted else 0.0,
            "recall": float(matrix[i, i] / support) if support else 0.0,
        }
        in_class = y_true == i
        if i == good_index:
            entry["overkill_rate"] = float(fail[in_class].mean()) if support else None
        else:
            entry["escape_rate"] = float((~fail[in_class]).mean()) if support else None
        per_class[name] = entry
    return {
        "n": len(y_true),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else 0.0,
        "escape_rate": escape,
        "overkill_rate": overkill,
        "threshold": threshold,
        "per_class": per_class,
        "confusion": matrix.tolist(),
        "classes": classes,
    }
