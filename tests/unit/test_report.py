"""The report's readings: the teacher's lead (nothing to transfer, not taken, or taken) and the student
against the baseline at equal overkill."""

import numpy as np
import pytest

pytest.importorskip("torch")

from edge_agent.trainer.report import equal_overkill, equal_overkill_line, markdown, teacher_lead, tradeoff_curve


def crafted(teacher: float, student: float, baseline: float | None, lam: float = 1.0) -> dict:
    model = {"arch": "x", "params": 1, "escape_rate": 0.0, "overkill_rate": 0.0, "per_class": {"stain": {}}}
    report = {"teacher": {**model, "test_accuracy": teacher}, "student": {**model, "test_accuracy": student}}
    if baseline is not None:
        report["baseline"] = {**model, "test_accuracy": baseline}
    return {**report, "lam": lam}


def test_no_baseline_no_reading():
    assert teacher_lead(crafted(0.9, 0.8, None)) is None


def test_a_teacher_no_better_than_the_student_alone_has_nothing_to_transfer():
    line = teacher_lead(crafted(0.753, 0.74, 0.745))
    assert "nothing for distillation to transfer" in line
    assert "--teacher-epochs" in line


def test_a_lead_the_student_does_not_take_points_at_the_student():
    line = teacher_lead(crafted(0.968, 0.728, 0.752))
    assert "leads the student alone by 21.6 points" in line
    assert "-2.4 of them" in line
    assert "does not learn what the teacher sees" in line


def test_a_lead_mostly_taken_points_at_a_longer_schedule():
    line = teacher_lead(crafted(0.95, 0.93, 0.88))
    assert "+5.0 of them (71%)" in line
    assert "--epochs" in line
    assert "levers" not in line


def test_a_lead_partly_taken_names_the_next_student_up():
    report = crafted(0.95, 0.93, 0.88)
    report["student"] = {**report["student"], "arch": "mobilenet_v3_small"}
    assert "--student-arch mobilenet_v3_large" in teacher_lead(report)
    report["student"]["arch"] = "mobilenet_v3_large"
    assert "--student-arch efficientnet_b0" in teacher_lead(report)


def test_a_lead_taken_is_reported_without_advice():
    line = teacher_lead(crafted(0.95, 0.945, 0.88))
    assert "(93%)" in line
    assert "--" not in line


def test_a_student_trained_alone_says_so():
    assert "without it (λ = 0)" in teacher_lead(crafted(0.95, 0.88, 0.88, lam=0.0))


def test_markdown_shows_the_reading_under_the_table():
    report = crafted(0.968, 0.728, 0.752)
    report.update(
        name="t",
        data={"root": "d", "layout": "imagefolder", "classes": ["good", "stain"], "counts": {}},
        tau=4.0,
        threshold=0.5,
        calibration={"note": "n"},
        good_class="good",
        teacher_lead=teacher_lead(report),
    )
    text = markdown(report)
    assert text.index("leads the student alone") < text.index("## Escape rate per defect class")


def scored(scores: list[float], is_defect: list[bool], overkill: float) -> dict:
    return {"defect_scores": np.array(scores), "is_defect": np.array(is_defect), "overkill_rate": overkill}


def test_equal_overkill_compares_each_model_at_the_others_cost():
    is_defect = [True, True, True, True, False, False, False, False]
    # The student separates perfectly; the baseline ranks one defect under every good part.
    student = scored([0.9, 0.8, 0.7, 0.6, 0.1, 0.2, 0.3, 0.4], is_defect, overkill=0.0)
    baseline = scored([0.9, 0.8, 0.7, 0.05, 0.1, 0.2, 0.3, 0.4], is_defect, overkill=0.75)
    rows = equal_overkill({"teacher": student, "student": student, "baseline": baseline})
    assert rows["at_baseline_overkill"] == {"overkill": 0.75, "student_escape": 0.0, "baseline_escape": 0.25}
    assert rows["at_student_overkill"] == {"overkill": 0.0, "student_escape": 0.0, "baseline_escape": 0.25}
    line = equal_overkill_line(rows)
    assert "the baseline (75.0 %), the student lets 0.0 % of defects escape (baseline 25.0 %)" in line
    assert equal_overkill({"teacher": student, "student": student}) is None


def test_tradeoff_curve_runs_from_failing_nothing_to_failing_everything_without_splitting_ties():
    overkill, escape = tradeoff_curve(np.array([True, False, True, False]), np.array([0.9, 0.5, 0.5, 0.1]))
    assert overkill.tolist() == [0.0, 0.0, 0.5, 1.0]
    assert escape.tolist() == [1.0, 0.5, 0.0, 0.0]
