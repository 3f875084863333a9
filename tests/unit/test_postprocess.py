"""Logits → verdicts: a row the model could not judge never becomes pass (or fail)."""

import numpy as np

from edge_agent.runtime.postprocess import Unjudged, Verdict, decide, softmax

CLASSES = ["good", "scratch", "dent"]


def test_finite_rows_get_verdicts_at_the_threshold():
    probs = softmax(np.array([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]], np.float32))
    ok, bad = decide(probs, CLASSES, 0, threshold=0.5)
    assert isinstance(ok, Verdict)
    assert ok.verdict == "pass"
    assert isinstance(bad, Verdict)
    assert bad.verdict == "fail"
    assert bad.label == "scratch"


def test_nan_and_inf_rows_are_unjudged_and_their_neighbours_are_not_touched():
    logits = np.array(
        [[np.nan, 0.0, 0.0], [5.0, 0.0, 0.0], [np.inf, 0.0, 0.0], [-np.inf, -np.inf, -np.inf]], np.float32
    )
    outcomes = decide(softmax(logits), CLASSES, 0, threshold=0.5)
    assert [type(o).__name__ for o in outcomes] == ["Unjudged", "Verdict", "Unjudged", "Unjudged"]
    assert isinstance(outcomes[0], Unjudged)
    assert "not finite" in outcomes[0].reason
    assert outcomes[1].verdict == "pass"  # type: ignore[union-attr]


def test_a_naive_threshold_would_have_passed_nan():
    """The bug this module guards against: NaN >= threshold is False, i.e. 'pass'."""
    assert not (float("nan") >= 0.5)
    (outcome,) = decide(np.array([[np.nan, np.nan, np.nan]], np.float32), CLASSES, 0, threshold=0.5)
    assert isinstance(outcome, Unjudged)


def test_softmax_is_stable_for_large_finite_logits():
    probs = softmax(np.array([[1e4, 0.0, -1e4]], np.float32))
    assert np.isfinite(probs).all()
    assert probs[0, 0] == 1.0
