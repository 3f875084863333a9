"""The report's reading of the teacher's lead: nothing to transfer, not taken, or taken."""

import pytest

pytest.importorskip("torch")

from edge_agent.trainer.report import markdown, teacher_lead


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


def test_a_lead_taken_is_reported_without_advice():
    line = teacher_lead(crafted(0.95, 0.93, 0.88))
    assert "+5.0 of them (71%)" in line
    assert "levers" not in line


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
