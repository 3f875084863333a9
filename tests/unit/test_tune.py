import numpy as np
import pytest

pytest.importorskip("torch")

from edge_agent.trainer.tune import candidates, escape_at_overkill, rung_epochs, teacher_earns_its_place


def test_candidates_include_no_teacher():
    pairs = candidates()
    assert (1.0, 0.0) in pairs
    assert len(pairs) == len(set(pairs)) == 10


def test_rungs_grow_and_stay_within_budget():
    epochs = rung_epochs(10, full_epochs=30, budget=3.0)
    assert epochs == sorted(epochs)
    assert epochs[-1] == 30  # the finalists train for the full budget; the winner ships as it is
    survivors = [10, 4, 2]
    assert sum(n * e for n, e in zip(survivors, epochs, strict=False)) <= 3.0 * 30 + 10


def test_escape_at_overkill():
    is_defect = np.array([True, True, True, False, False, False, False])
    scores = np.array([0.9, 0.6, 0.2, 0.1, 0.3, 0.5, 0.7])
    # At most 1 of 4 good parts may fail: a threshold in (0.5, 0.6] fails 0.6, 0.7, 0.9 and lets 0.2 escape.
    assert escape_at_overkill(is_defect, scores, 0.25) == pytest.approx(1 / 3)
    assert escape_at_overkill(is_defect, scores, 1.0) == 0.0


def _row(escape: float, accuracy: float) -> dict:
    return {"val_escape": escape, "val_accuracy": accuracy}


def test_a_teacher_must_beat_the_student_alone_to_be_used():
    reference = _row(0.10, 0.80)  # sampling error of 100 validation images at 80 %: 4 points
    # fewer escapes at the same accuracy, or within the sampling error: distil
    assert teacher_earns_its_place(_row(0.05, 0.80), reference, n_val=100)
    assert teacher_earns_its_place(_row(0.05, 0.765), reference, n_val=100)
    # fewer escapes bought with a clearly worse classifier: student alone
    assert teacher_earns_its_place(_row(0.05, 0.75), reference, n_val=100) is None
    # same escape, two more validation images right: distil; one more is noise: student alone
    assert teacher_earns_its_place(_row(0.10, 0.82), reference, n_val=100)
    assert teacher_earns_its_place(_row(0.10, 0.81), reference, n_val=100) is None
    # more escapes: student alone, however accurate
    assert teacher_earns_its_place(_row(0.15, 0.95), reference, n_val=100) is None
