import numpy as np
import pytest

pytest.importorskip("torch")

from edge_agent.trainer.tune import candidates, escape_at_overkill, rung_epochs


def test_candidates_include_no_teacher():
    pairs = candidates()
    assert (1.0, 0.0) in pairs
    assert len(pairs) == len(set(pairs)) == 10


def test_rungs_grow_and_stay_within_budget():
    epochs = rung_epochs(10, full_epochs=30, budget=3.0)
    assert epochs == sorted(epochs)
    assert epochs[-1] <= 30
    survivors = [10, 4, 2]
    assert sum(n * e for n, e in zip(survivors, epochs, strict=False)) <= 3.0 * 30 + 10


def test_escape_at_overkill():
    is_defect = np.array([True, True, True, False, False, False, False])
    scores = np.array([0.9, 0.6, 0.2, 0.1, 0.3, 0.5, 0.7])
    # At most 1 of 4 good parts may fail: a threshold in (0.5, 0.6] fails 0.6, 0.7, 0.9 and lets 0.2 escape.
    assert escape_at_overkill(is_defect, scores, 0.25) == pytest.approx(1 / 3)
    assert escape_at_overkill(is_defect, scores, 1.0) == 0.0
