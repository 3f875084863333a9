"""The report's readings: the teacher's lead (nothing to transfer, not taken, or taken) and the student
against the baseline at equal overkill."""

import numpy as np
import pytest

pytest.importorskip("torch")

from edge_agent.trainer.report import equal_overkill, equal_overkill_line, markdown, teacher_lead
from edge_agent.trainer.report_pictures import tradeoff_curve


def crafted(teacher: float, student: float, baseline: float | None, lam: float = 1.0) -> dict:
    model = {"arch": "x", "params": 1, "escape_rate": 0.0, "overkill_rate": 0.0, "per_class": {"stain": {}}}
    report = {"teacher": {**model, "test_accuracy": teacher}, "student": {**model, "test_accuracy": student}}
    if baseline is not None:
        report["baseline"] = {**model, "test_accuracy": baseline}
    return {**report, "lam": lam}


def renderable(report: dict, **fields) -> dict:
    """`crafted` plus what `markdown` reads besides the models; `fields` override."""
    data = {"root": "d", "layout": "imagefolder", "classes": ["good", "stain"], "counts": {}}
    defaults = {"name": "t", "data": data, "tau": 4.0, "threshold": 0.5, "calibration": {"note": "n"}}
    return {**report, **defaults, "good_class": "good", **fields}


def test_no_baseline_no_reading():
    assert teacher_lead(crafted(0.9, 0.8, None)) is None


def test_a_teacher_no_better_than_the_student_alone_has_nothing_to_transfer():
    line = teacher_lead(crafted(0.753, 0.74, 0.745))
    assert "nothing for distillation to transfer" in line
    assert "--teacher-epochs" in line


def test_a_teacher_whose_stem_halves_the_image_is_pointed_at_full_resolution_first():
    report = crafted(0.865, 0.87, 0.90)
    report["teacher"]["stem_stride"] = 2
    line = teacher_lead(report)
    assert "--teacher-stem-stride 1" in line
    assert line.index("--teacher-stem-stride 1") < line.index("--teacher-epochs")
    report["teacher"]["stem_stride"] = 1
    assert "--teacher-stem-stride" not in teacher_lead(report)


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
    text = markdown(renderable(report, teacher_lead=teacher_lead(report)))
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


def test_the_gate_names_every_floor_missed():
    from edge_agent.trainer.report import gate

    report = crafted(0.9, 0.70, 0.6)
    report.update(shipped="student", calibration_met=True)
    report["student"]["overkill_rate"] = 0.98
    assert gate(report, 0.01, {}) is None, "no floor stated, target met: fit"
    text = gate(report, 0.01, {"fail_under": 0.85, "max_overkill": 0.10})
    assert "test accuracy 70.0 % is under --fail-under 85.0 %" in text
    assert "test overkill 98.0 % is over --max-overkill 10.0 %" in text
    report["calibration_met"] = False
    assert "--max-escape 0.01" in gate(report, 0.01, {})


def test_contact_sheets_and_histograms_show_the_mistakes_with_paths_relative_to_the_data_root(tmp_path):
    import cv2

    from edge_agent.trainer.report_pictures import contact_sheet, mistakes, score_histograms

    root = tmp_path / "data"
    paths = []
    for i, name in enumerate(["good", "good", "stain", "stain"]):
        path = root / "test" / name / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.full((16, 16, 3), 40 * i, np.uint8))
        paths.append(path)
    ev = {
        "defect_scores": np.array([0.1, 0.9, 0.2, 0.8]),
        "is_defect": np.array([False, False, True, True]),
        "labels": np.array([0, 0, 1, 1]),
        "classes": ["good", "stain"],
    }
    found = mistakes(ev, paths, root, threshold=0.5)
    assert found == {
        "escaped": [{"path": "test/stain/2.png", "label": "stain", "defect_score": 0.2}],
        "overkill": [{"path": "test/good/1.png", "label": "good", "defect_score": 0.9}],
    }
    assert contact_sheet(tmp_path / "escapes.png", found["escaped"], root, "escaped")
    assert not contact_sheet(tmp_path / "none.png", [], root, "nothing")
    score_histograms(tmp_path / "scores.png", ev, 0.5, "good")
    assert cv2.imread(str(tmp_path / "escapes.png")) is not None
    assert cv2.imread(str(tmp_path / "scores.png")) is not None
    assert not (tmp_path / "none.png").exists()


def test_markdown_prints_counts_not_a_dict_and_no_absolute_paths():
    report = renderable(
        crafted(0.9, 0.85, 0.8),
        data={"root": "press7-data", "layout": "imagefolder", "classes": ["good", "stain"],
              "counts": {"train": 480, "val": 120, "test": 160}},
        mistakes={"escaped": [{"path": "test/stain/3.png", "label": "stain", "defect_score": 0.2}], "overkill": []},
    )  # fmt: skip
    text = markdown(report)
    assert "train 480, val 120, test 160 images" in text
    assert "{" not in text.split("\n")[2]
    assert "`test/stain/3.png` (stain, 0.200)" in text
    assert "No good parts it fails." in text


def test_a_student_with_a_halving_stem_is_pointed_at_the_full_resolution_stem_first():
    report = crafted(0.95, 0.90, 0.80)
    report["student"] = {**report["student"], "stem_stride": 2}
    assert "--student-stem-stride 1" in teacher_lead(report)
    report["student"]["stem_stride"] = 1
    assert "--student-stem-stride" not in teacher_lead(report)


def test_the_loss_line_of_a_student_trained_alone_names_no_temperature():
    # --tune ships the student alone (λ = 0) when the teacher is clearly behind; its τ is a placeholder.
    report = renderable(crafted(0.95, 0.975, 0.975, lam=0.0), tau=1.0)
    loss_line = next(line for line in markdown(report).splitlines() if line.startswith("Student loss"))
    assert loss_line == "Student loss: L = CE — the student alone (λ = 0), the teacher not used."


def test_the_training_budget_says_which_arithmetic_the_steps_ran_in():
    report = renderable(crafted(0.95, 0.93, 0.9), arithmetic="bfloat16")
    for model in ("teacher", "student", "baseline"):
        report[model] = {**report[model], "epochs_run": 3, "best_epoch": 2, "train_seconds": 9.0}
    text = markdown(report)
    budget = text[text.index("## Training budget") :]
    assert "Training steps in bfloat16 (`--precision`); weights and losses in float32." in budget
    assert budget.index("bfloat16") < budget.index("| model | epochs run")


def test_a_model_stopped_early_while_under_fitted_is_pointed_at_the_whole_budget():
    # Stop 30, trainer synth: a ResNet-18 stopped at epoch 40 of 90 fitting 80 % of its training images
    # (75.5 % on test); with --patience 0 it reached 87.5 %.
    report = renderable(crafted(0.755, 0.765, 0.98))
    stopped = "early stop after epoch 40: no validation progress for 8 epochs (--patience 8)"
    budget = {"epochs_run": 40, "best_epoch": 39, "train_seconds": 480.0, "stopped_early": stopped}
    report["teacher"] = {**report["teacher"], **budget, "final_train_accuracy": 0.797}
    report["baseline"] = {**report["baseline"], **budget, "final_train_accuracy": 0.99}
    report["student"] = {**report["student"], "epochs_run": 90, "best_epoch": 80, "train_seconds": 900.0}
    text = markdown(report)
    advice = [line for line in text.splitlines() if "--patience 0" in line]
    assert len(advice) == 1
    assert advice[0].startswith("The teacher stopped early at epoch 40 fitting 79.7 % of its training images")


def stalled_teacher_report(schedule: str) -> dict:
    # Stop 30, trainer synth, 90 epochs: the cosine teacher's validation stalled while it fitted 73-80 % of its
    # training images; --fit-floor kept it going, it ended at 87.5 %; with --schedule onecycle it reached 96.5 %.
    report = renderable(crafted(0.875, 0.88, 0.98), schedule=schedule)
    stall = {"epochs": 14, "first_epoch": 27, "last_epoch": 40, "train_accuracy": [0.731, 0.802]}
    budget = {"epochs_run": 89, "best_epoch": 75, "train_seconds": 900.0, "final_train_accuracy": 0.99}
    report["teacher"] = {**report["teacher"], **budget, "stalled_under_floor": stall}
    report["student"] = {**report["student"], **budget, "stalled_under_floor": None}
    return report


def test_a_model_that_stalled_under_the_fit_floor_with_the_cosine_is_pointed_at_one_cycle():
    text = markdown(stalled_teacher_report("cosine"))
    advice = [line for line in text.splitlines() if "--schedule onecycle" in line]
    assert len(advice) == 1
    assert advice[0].startswith(
        "At 14 epochs between 27 and 40 the teacher's validation had not progressed for --patience epochs and it "
        "went on only because it fitted under the floor of its training images (73.1-80.2 % an epoch; --fit-floor)."
    )
    assert "the student's validation" not in text
    # Already on one-cycle: nothing to switch to.
    assert "--schedule onecycle" not in markdown(stalled_teacher_report("onecycle"))


def test_a_plateau_held_by_the_floor_only_as_the_cosine_ends_is_not_a_stall_at_the_peak_rate():
    # Stop 33, models/demo's student alone: a plateau held at epochs 29-30 of 30, where the cosine's rate is
    # 0.3 % of its peak. It under-fits at this budget; one-cycle's slower climb to the peak is no cure.
    report = stalled_teacher_report("cosine")
    late = {"epochs": 2, "first_epoch": 29, "last_epoch": 30, "train_accuracy": [0.7646, 0.7688], "rate": 0.011}
    report["teacher"] = {**report["teacher"], "epochs_run": 30, "stalled_under_floor": late}
    text = markdown(report)
    assert "--schedule onecycle" not in text
    advice = [line for line in text.splitlines() if "--fit-floor" in line]
    assert len(advice) == 1
    assert advice[0].startswith(
        "The teacher ended its 30 epochs on a validation plateau fitting 76.5-76.9 % of its training images "
        "(under --fit-floor)"
    )
    assert "at 1% of its peak" in advice[0]
    report["teacher"]["stalled_under_floor"] = {**late, "rate": 0.003}
    assert "at under 1% of its peak" in markdown(report)
    # At the peak (stop 30's teacher: 84 % of it at epoch 27 of 90) the advice stands.
    early = {**late, "first_epoch": 27, "last_epoch": 40, "rate": 0.84}
    report["teacher"] = {**report["teacher"], "epochs_run": 89, "stalled_under_floor": early}
    assert "--schedule onecycle" in markdown(report)
