import numpy as np
import pytest

from edge_agent.runtime.metrics import calibrate_threshold, classification_report, escape_overkill, wilson_interval


def test_escape_and_overkill_definitions():
    is_defect = np.array([True, True, False, False])
    scores = np.array([0.9, 0.2, 0.6, 0.1])
    escape, overkill = escape_overkill(is_defect, scores, 0.5)
    assert escape == 0.5  # the defect at 0.2 passes
    assert overkill == 0.5  # the good part at 0.6 fails


def test_lowest_overkill_within_escape_target():
    is_defect = np.array([True] * 4 + [False] * 6)
    scores = np.array([0.95, 0.9, 0.8, 0.4, 0.05, 0.1, 0.2, 0.3, 0.5, 0.85])
    cal = calibrate_threshold(is_defect, scores, max_escape=0.0)
    assert cal.target_met
    assert cal.escape_rate == 0.0
    # every defect (lowest 0.4) must fail; goods at 0.5 and 0.85 fail with it
    assert 0.3 < cal.threshold <= 0.4
    assert cal.overkill_rate == pytest.approx(2 / 6)


def test_looser_escape_target_lowers_overkill():
    is_defect = np.array([True] * 4 + [False] * 6)
    scores = np.array([0.95, 0.9, 0.8, 0.4, 0.05, 0.1, 0.2, 0.3, 0.5, 0.85])
    cal = calibrate_threshold(is_defect, scores, max_escape=0.25)
    assert cal.escape_rate == 0.25
    assert cal.overkill_rate == pytest.approx(1 / 6)


def test_the_note_says_what_a_validation_escape_rate_can_promise():
    # 6 of 128 defects escaping on validation: the true rate may lie anywhere from about 2 % to 10 %.
    lo, hi = wilson_interval(6, 128)
    assert lo == pytest.approx(0.0217, abs=5e-4)
    assert hi == pytest.approx(0.0985, abs=5e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    is_defect = np.array([True] * 4 + [False] * 6)
    scores = np.array([0.95, 0.9, 0.8, 0.4, 0.05, 0.1, 0.2, 0.3, 0.5, 0.85])
    cal = calibrate_threshold(is_defect, scores, max_escape=0.25)
    assert "1 of 4 defective validation images pass" in cal.note


def test_never_rejects_everything_and_says_so():
    # Every defect scores below every good part: keeping escape low would fail every good part.
    is_defect = np.array([True, True, False, False])
    scores = np.array([0.1, 0.2, 0.8, 0.9])
    cal = calibrate_threshold(is_defect, scores, max_escape=0.0)
    assert not cal.target_met
    assert cal.overkill_rate < 1.0
    assert "no threshold" in cal.note


def test_no_defect_in_validation_keeps_half():
    cal = calibrate_threshold(np.zeros(5, dtype=bool), np.linspace(0, 1, 5))
    assert cal.threshold == 0.5
    assert not cal.target_met
    assert "no defect images" in cal.note


def test_classification_report_per_class_escape():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    report = classification_report(np.array([0, 1, 1, 0]), probs, ["good", "dent"], 0, 0.5)
    assert report["accuracy"] == 0.5
    assert report["per_class"]["dent"]["escape_rate"] == 0.5
    assert report["per_class"]["good"]["overkill_rate"] == 0.5
    assert report["confusion"] == [[1, 1], [1, 1]]
