"""Which of the distilled student and the student alone ships (`--ship`), judged on validation.

A line feels a model through its verdicts at the calibrated threshold: escapes are held to the target by
calibration, so what is left to differ is the good parts it fails (overkill). Label accuracy says how well
it names defects; on a few dozen validation images a point of it is one or two images, a coin flip. So:
the candidate that meets the escape target beats one that does not; then the clearly more accurate one
(beyond the paired sampling error, see `Gap`); within that error the one that fails fewer good parts;
then the more accurate one; a full tie ships the distilled student.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_agent.runtime.metrics import Calibration
from edge_agent.trainer.paired import Gap


@dataclass(frozen=True)
class Judged:
    """A candidate on the validation split, at its own calibrated threshold."""

    correct: np.ndarray  # per validation image: the label (argmax) is right
    failed_good: np.ndarray  # per good validation image: failed at the threshold
    escape_met: bool  # the calibration kept validation escape within --max-escape

    @classmethod
    def of(
        cls, correct: np.ndarray, is_good: np.ndarray, defect_scores: np.ndarray, calibration: Calibration
    ) -> Judged:
        fails = np.asarray(defect_scores) >= calibration.threshold
        return cls(np.asarray(correct, dtype=bool), fails[np.asarray(is_good, dtype=bool)], calibration.target_met)

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if len(self.correct) else 0.0

    @property
    def overkill(self) -> str:
        return f"{int(self.failed_good.sum())} of {len(self.failed_good)}"


def _better(a: Judged, b: Judged) -> str | None:
    """Why `a` should ship rather than `b`, or None where it should not."""
    if a.escape_met != b.escape_met:
        return "it meets the escape target on validation and the other does not" if a.escape_met else None
    accuracy = Gap.of(a.correct, b.correct)
    versus = f"validation accuracy {a.accuracy:.1%} vs {b.accuracy:.1%} (±{accuracy.margin:.1%})"
    if accuracy.clearly_up:
        return f"it is clearly more accurate: {versus}"
    if accuracy.clearly_down:
        return None
    fewer = int(a.failed_good.sum()) - int(b.failed_good.sum())
    if fewer < 0:
        return (
            f"{versus}, within the sampling error, and it fails fewer good parts at its calibrated threshold "
            f"({a.overkill} vs {b.overkill})"
        )
    if fewer == 0 and a.accuracy > b.accuracy:
        return f"as many good parts failed ({a.overkill}) and {versus}"
    return None


def choose_shipped(ship: str, student: Judged, baseline: Judged | None) -> tuple[str, str]:
    """'student' or 'baseline', and why, for `--ship student|best`."""
    if baseline is None:
        return "student", "The distilled student was shipped (no baseline trained to compare against)."
    why_baseline = _better(baseline, student)
    if why_baseline is None:
        why = _better(student, baseline)
        reason = (
            f": {why}"
            if why
            else f" (a tie on validation: accuracy {student.accuracy:.1%}, overkill {student.overkill})"
        )
        return "student", f"The distilled student was shipped{reason}."
    if ship == "best":
        return "baseline", f"The student alone (no teacher) was shipped (--ship best): {why_baseline}."
    return "student", (
        f"WARNING: the student alone would be the better line model ({why_baseline}); the distilled student was "
        "shipped because --ship student. Use --ship best or --tune."
    )
