"""report.json, report.md and the pictures an inspection engineer looks at first."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_agent.runtime.metrics import escape_at_overkill
from edge_agent.trainer.models import arch_label
from edge_agent.trainer_options import DistillOptions


def equal_overkill(evaluations: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Student and baseline compared at the same overkill on test (each at the other's calibrated
    overkill; thresholds set on test for this comparison only). Escape at the calibrated thresholds
    rewards a model for failing many good parts; at equal overkill the better model has fewer escapes."""
    if not {"student", "baseline"} <= evaluations.keys():
        return None
    student, baseline = evaluations["student"], evaluations["baseline"]
    rows = {}
    for at in ("baseline", "student"):
        overkill = evaluations[at]["overkill_rate"]
        rows[f"at_{at}_overkill"] = {
            "overkill": overkill,
            **{
                f"{name}_escape": escape_at_overkill(ev["is_defect"], ev["defect_scores"], overkill)
                for name, ev in (("student", student), ("baseline", baseline))
            },
        }
    return rows


def equal_overkill_line(rows: dict[str, Any]) -> str:
    b, s = rows["at_baseline_overkill"], rows["at_student_overkill"]
    return (
        f"At equal overkill (thresholds set on test for this comparison only): failing as many good parts as "
        f"the baseline ({_pct(b['overkill'])}), the student lets {_pct(b['student_escape'])} of defects escape "
        f"(baseline {_pct(b['baseline_escape'])}); at the student's overkill ({_pct(s['overkill'])}), the baseline "
        f"lets {_pct(s['baseline_escape'])} escape (student {_pct(s['student_escape'])}). See tradeoff.png."
    )


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _share(fraction: float) -> str:
    return f"{fraction:.0%}" if fraction >= 0.01 else "under 1%"


# The next student up, for the advice when a student took only part of the teacher's lead.
LARGER_STUDENT = {"mobilenet_v3_small": "mobilenet_v3_large", "mobilenet_v3_large": "efficientnet_b0"}


def _larger_student(arch: str) -> str:
    larger = LARGER_STUDENT.get(arch)
    return f"a larger student (--student-arch {larger})" if larger else "a larger --student-arch"


def teacher_lead(report: dict[str, Any]) -> str | None:
    """What distillation made of the teacher's lead over the student alone (test accuracy), and the lever
    to pull next; None without a baseline. A tiny lead means there was nothing to transfer; a big lead
    the student did not take means the student cannot learn what the teacher sees — two different fixes."""
    if "baseline" not in report or "teacher" not in report:
        return None
    teacher, student, alone = (report[m]["test_accuracy"] for m in ("teacher", "student", "baseline"))
    points = f"{100 * (teacher - alone):.1f} points"
    if teacher - alone < 0.01:
        stem = (
            "--teacher-stem-stride 1 (its stem halves the image; at 12 epochs it took a ResNet-18 on grass "
            "photographs from 87.5 % to 93.5 % for 3.6x the time), "
            if report["teacher"].get("stem_stride") == 2
            else ""
        )
        return (
            f"The teacher is no more accurate than the student alone on test ({_pct(teacher)} vs {_pct(alone)}): "
            f"there is nothing for distillation to transfer. Train a better teacher first: {stem}more "
            "--teacher-epochs (a ResNet-18 on grass photographs scored 89.5 % at 12 epochs, 95.0 % at 20), a "
            "larger --teacher-arch, or --pretrained weights."
        )
    if report["lam"] == 0:
        return f"The teacher leads the student alone by {points}; the shipped student was trained without it (λ = 0)."
    taken = (student - alone) / (teacher - alone)
    line = (
        f"The teacher leads the student alone by {points} ({_pct(teacher)} vs {_pct(alone)}); the distilled "
        f"student took {100 * (student - alone):+.1f} of them ({taken:.0%})."
    )
    if taken < 0.8 and report["student"].get("stem_stride") == 2:
        # The first lever: on 128 px photographs this alone took MobileNetV3-Small from 74.5 % to 87.5 %.
        line += " Its stem halves the image before the first block: try --student-stem-stride 1 first."
    if taken < 0.25:
        line += (
            " The student does not learn what the teacher sees: more unlabelled production images (--unlabeled), "
            "a longer schedule (--epochs) or a larger --student-arch are the levers; the escape table below shows "
            "which defects it misses."
        )
    elif taken < 0.8:
        line += (
            f" To take more of it: {_larger_student(report['student']['arch'])}, a longer schedule "
            "(--epochs; distillation keeps gaining after the student alone has stopped) and more unlabelled "
            "images (--unlabeled, --unlabeled-ratio)."
        )
    return line


def _loss_line(report: dict[str, Any]) -> str:
    hint_weight = report.get("hint_weight")
    if report["lam"] == 0 and not hint_weight:
        return "Student loss: L = CE — the student alone (λ = 0), the teacher not used."
    hint = f", feature hint weight {hint_weight}" if hint_weight else ""
    return f"Student loss: L = CE + λ·τ²·KL with τ = {report['tau']}, λ = {report['lam']}{hint}."


def markdown(report: dict[str, Any]) -> str:
    models = [m for m in ("teacher", "student", "baseline") if m in report]
    lines = [
        f"# Distillation report — {report['name']}",
        "",
        f"Data: `{report['data']['root']}` ({report['data']['layout']}), classes "
        f"{', '.join(report['data']['classes'])}; "
        + ", ".join(f"{split} {count:,}" for split, count in report["data"]["counts"].items())
        + " images.",
        "",
        _loss_line(report),
        f"Threshold on the defect score 1 − p(good): **{report['threshold']:.4f}** ({report['calibration']['note']}).",
        "",
        "| model | arch | params | test accuracy | escape | overkill | best epoch |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in models:
        r = report[m]
        lines.append(
            f"| {m} | {arch_label(r['arch'], r.get('stem_stride', 2))} | {r['params']:,} | "
            f"{_pct(r['test_accuracy'])} | "
            f"{_pct(r['escape_rate'])} | {_pct(r['overkill_rate'])} | {r.get('best_epoch', '—')} |"
        )
    lines += [
        "",
        "Escape = defective parts judged pass; overkill = good parts judged fail; both at the calibrated threshold.",
    ]
    lines += _budget_section(report, models)
    if report.get("teacher_lead"):
        lines += ["", report["teacher_lead"]]
    if report.get("equal_overkill"):
        lines += ["", equal_overkill_line(report["equal_overkill"])]
    lines += [
        "",
        "## Escape rate per defect class",
        "",
        "| class | " + " | ".join(models) + " |",
        "| --- |" + " ---: |" * len(models),
    ]
    classes = report["data"]["classes"]
    for name in classes:
        if name == report["good_class"]:
            continue
        cells = [_pct(report[m]["per_class"][name].get("escape_rate")) for m in models]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if "verdict" in report:
        lines += ["", "## What was shipped", "", report["verdict"]]
    if "tuning" in report:
        lines += [
            "",
            "## τ/λ chosen on validation",
            "",
            "| τ | λ | epochs | val accuracy | val escape | at val overkill | best epoch's val accuracy | kept |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for c in report["tuning"]["candidates"]:
            lines.append(
                f"| {c['tau']} | {c['lam']} | {c['epochs']} | {_pct(c['val_accuracy'])} | "
                f"{_pct(c['val_escape'])} | {_pct(c['val_overkill'])} | {_pct(c.get('best_val_accuracy'))} | "
                f"{c['outcome']} |"
            )
        lines += ["", report["tuning"]["why"]]
        if "objective" in report["tuning"]:
            lines += ["", f"How candidates were compared: {report['tuning']['objective']}."]
    lines += _mistakes_section(report)
    if report.get("gate"):
        lines += ["", "## Gate", "", report["gate"]]
    lines += ["", "![confusion matrices](confusion.png)", "", "![escape against overkill](tradeoff.png)"]
    lines += ["", "![test scores by class, with the threshold](scores.png)"]
    lines += ["", "![training curves](curves.png)", ""]
    return "\n".join(lines)


UNDER_FITTED = DistillOptions.fit_floor  # a model stopped under the default floor (the floor lowered) gets the advice
# A plateau held by the floor while the rate was at least this share of its peak is a stall at the peak, which a
# slower climb (one-cycle) cured on trainer synth; under it the budget is running out (stop 33, models/demo).
PEAK_SHARE = 0.5


def _budget_section(report: dict[str, Any], models: Sequence[str]) -> list[str]:
    """How much of its epoch budget each trained model used, and how soon it was nearly there."""
    trained = [m for m in models if report[m].get("epochs_run")]
    if not trained:
        return []
    lines = ["", "## Training budget", ""]
    if report.get("arithmetic"):
        lines += [f"Training steps in {report['arithmetic']} (`--precision`); weights and losses in float32.", ""]
    lines += [
        "| model | epochs run | best epoch | 95 % of its best val accuracy at | seconds | stopped |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for m in trained:
        r, at = report[m], report[m].get("time_to_95") or {}
        reached = f"epoch {at['epoch']} ({at['seconds']:.0f} s)" if at else "—"
        stopped = "early: " + r["stopped_early"] if r.get("stopped_early") else "at the last epoch"
        lines.append(
            f"| {m} | {r['epochs_run']} | {r['best_epoch']} | {reached} | {r['train_seconds']:.0f} | {stopped} |"
        )
    for m in trained:
        r, fit_share = report[m], report[m].get("final_train_accuracy")
        if r.get("stopped_early") and fit_share is not None and fit_share < UNDER_FITTED:
            lines += [
                "",
                f"The {m} stopped early at epoch {r['epochs_run']} fitting {_pct(fit_share)} of its training images: "
                "it may still have been learning. Run it again with --patience 0 (the whole budget): on trainer synth "
                "a ResNet-18 stopped that way at 75.5 % reached 87.5 % (docs/benchmarks.md).",
            ]
    for m in trained:
        stall = report[m].get("stalled_under_floor")
        if not stall:
            continue
        low, high = stall["train_accuracy"]
        if stall.get("rate", 1.0) < PEAK_SHARE:
            if stall["last_epoch"] == report[m]["epochs_run"]:
                lines += [
                    "",
                    f"The {m} ended its {report[m]['epochs_run']} epochs on a validation plateau fitting "
                    f"{100 * low:.1f}-{100 * high:.1f} % of its training images (under --fit-floor): it under-fits "
                    f"at this budget, and more --epochs is the lever (the plateau came as the rate ran out, at "
                    f"{_share(stall['rate'])} of its peak: not a stall at the peak, which a slower climb to it cures).",
                ]
        elif report.get("schedule") == "cosine":
            lines += [
                "",
                f"At {stall['epochs']} epochs between {stall['first_epoch']} and {stall['last_epoch']} the {m}'s "
                f"validation had not progressed for --patience epochs and it went on only because it fitted under "
                f"the floor of its training images ({100 * low:.1f}-{100 * high:.1f} % an epoch; "
                "--fit-floor). A model that stalls at the cosine's early peak rate may learn sooner with --schedule "
                "onecycle, which climbs to the peak over the first 3/10 of the steps: a ResNet-18 on trainer synth at "
                "90 epochs reached 96.5 and 98.0 % with it (without and with early stopping) against 87.5 % "
                "(docs/benchmarks.md).",
            ]
    return lines


def gate(report: dict[str, Any], max_escape: float, gates: dict[str, float]) -> str | None:
    """Why the shipped bundle should not go to a line, or None: the escape target not met on validation,
    or a floor the user stated (--fail-under, --max-overkill) not met on test. The CLI exits 3 on it."""
    shipped = report[report.get("shipped", "student")]
    reasons = []
    if not report.get("calibration_met", True):
        reasons.append(
            f"no threshold kept validation escape within --max-escape {max_escape:g} without failing every good part"
        )
    if "fail_under" in gates and shipped["test_accuracy"] < gates["fail_under"]:
        reasons.append(
            f"test accuracy {_pct(shipped['test_accuracy'])} is under --fail-under {_pct(gates['fail_under'])}"
        )
    if "max_overkill" in gates and shipped["overkill_rate"] > gates["max_overkill"]:
        reasons.append(
            f"test overkill {_pct(shipped['overkill_rate'])} is over --max-overkill {_pct(gates['max_overkill'])}"
        )
    if not reasons:
        return None
    return "NOT FIT FOR A LINE: " + "; ".join(reasons) + ". The bundle and this report were written for diagnosis."


def _mistakes_section(report: dict[str, Any]) -> list[str]:
    found = report.get("mistakes")
    if not found:
        return []
    lines = ["", "## What the shipped model gets wrong on test", ""]
    for kind, picture, what in (
        ("escaped", "escapes.png", "defective parts it passes"),
        ("overkill", "overkill.png", "good parts it fails"),
    ):
        rows = found[kind]
        if not rows:
            lines.append(f"No {what}.")
            continue
        worst = ", ".join(f"`{r['path']}` ({r['label']}, {r['defect_score']:.3f})" for r in rows[:5])
        lines += [f"{len(rows)} {what}; the worst: {worst}.", "", f"![{what}]({picture})", ""]
    return lines


def write_report(
    out: Path,
    report: dict[str, Any],
    evaluations: dict[str, dict[str, Any]],
    histories: dict[str, list[dict[str, float]]],
    data_root: Path | None = None,
) -> None:
    from edge_agent.trainer.report_pictures import (
        contact_sheet,
        plot_confusions,
        plot_curves,
        plot_tradeoff,
        score_histograms,
    )

    shipped = evaluations.get(report.get("shipped", "student"))
    if shipped is not None and data_root is not None and report.get("mistakes"):
        found = report["mistakes"]
        contact_sheet(out / "escapes.png", found["escaped"], data_root, "escaped: defective test parts passed")
        contact_sheet(out / "overkill.png", found["overkill"], data_root, "overkill: good test parts failed")
        score_histograms(out / "scores.png", shipped, report["threshold"], report["good_class"])
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(markdown(report), encoding="utf-8")
    plot_confusions(out / "confusion.png", evaluations)
    plot_tradeoff(out / "tradeoff.png", evaluations)
    plot_curves(out / "curves.png", histories)
