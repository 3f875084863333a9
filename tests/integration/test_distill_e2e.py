"""A tiny but real `trainer distill` run through the CLI: complete bundle, ONNX = PyTorch, report."""

import json

import numpy as np
import pytest

from edge_agent.cli import main

pytestmark = pytest.mark.slow
torch = pytest.importorskip("torch")


def distill(data, out, flags: str, *extra: str) -> int:
    """`trainer distill` on the tiny data at 32 px with a ResNet-18 teacher and 2 student epochs.

    The student is named although it is the default (MobileNetV3-Small): these tests check the pipeline
    and must not slow down if the default changes.
    """
    base = ["-q", "trainer", "distill", str(data), "--out", str(out), "--teacher-arch", "resnet18"]
    base += ["--student-arch", "mobilenet_v3_small"]
    return main([*base, "--epochs", "2", "--image-size", "32", "--no-progress", *flags.split(), *extra])


def test_distill_writes_a_complete_bundle(tiny_data, tmp_path, capsys):
    out = tmp_path / "bundle"
    flags = "--teacher-epochs 2 --batch-size 16 --baseline --feature-kd --mixup 0.4 --max-escape 1"  # not the gate
    code = distill(tiny_data, out, flags)
    assert code == 0
    for name in ("model.onnx", "manifest.json", "report.json", "report.md", "confusion.png", "curves.png"):
        assert (out / name).is_file(), name
    assert (out / "tradeoff.png").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    report = json.loads((out / "report.json").read_text())
    for key in (
        "name",
        "version",
        "created",
        "classes",
        "good_class",
        "input",
        "threshold",
        "files",
        "metrics",
        "teacher",
        "student",
        "trainer",
    ):
        assert key in manifest, key
    assert manifest["trainer"]["onnx_parity_max_abs"] <= 1e-4 * 100
    for model in ("teacher", "student", "baseline"):
        for key in ("arch", "params", "test_accuracy"):
            assert key in report[model]
        # What --ship best went by: each candidate on validation at its own calibrated threshold.
        validation = report[model]["validation"]
        assert validation["threshold"] == report[model]["threshold"]
        assert 0.0 <= validation["accuracy"] <= 1.0
        assert 0.0 <= validation["overkill_rate"] <= 1.0
    assert report[report["shipped"]]["validation"]["overkill_rate"] == report["calibration"]["overkill_rate"]
    assert report["teacher"]["params"] >= 5 * report["student"]["params"]
    for key in ("escape_rate", "overkill_rate"):
        assert key in report["student"]
    assert report["tau"] == 2.0  # the default temperature
    assert report["lam"] == 1.0
    assert "| student | mobilenet_v3_small (stem stride 1) |" in (out / "report.md").read_text()
    # The default full-resolution stem is what ships, and the bundle says so.
    assert manifest["student"]["stem_stride"] == 1 == report["student"]["stem_stride"]
    assert manifest["teacher"]["stem_stride"] == 2
    at_baseline = report["equal_overkill"]["at_baseline_overkill"]
    assert at_baseline["overkill"] == report["baseline"]["overkill_rate"]
    assert "At equal overkill" in (out / "report.md").read_text()

    # The bundle's ONNX gives the same predictions in ONNX Runtime as the student in PyTorch.
    from edge_agent.runtime.tools.evaluate import evaluate_bundle

    evaluation = evaluate_bundle(out, tiny_data)
    assert evaluation["accuracy"] == pytest.approx(report["student"]["test_accuracy"], abs=0.005)
    assert evaluation["escape_rate"] == pytest.approx(report["student"]["escape_rate"], abs=0.005)


def train_teacher(data, run) -> None:
    args = ["-q", "trainer", "teacher", str(data), "--out", str(run), "--teacher-arch", "resnet18", "--epochs", "1"]
    assert main([*args, "--image-size", "32", "--no-progress"]) == 0


def test_teacher_then_distill_with_resume(tiny_data, tmp_path):
    run = tmp_path / "run"
    train_teacher(tiny_data, run)
    assert (run / "teacher.pt").is_file()
    out = tmp_path / "bundle"
    args = [
        "-q",
        "trainer",
        "distill",
        str(tiny_data),
        "--out",
        str(out),
        "--teacher",
        str(run / "teacher.pt"),
        "--epochs",
        "2",
        "--image-size",
        "32",
        "--max-escape",
        "1",  # two epochs cannot meet an escape target; this test is about resuming, not the gate
        "--no-progress",
    ]
    assert main(args) == 0
    checkpoint = tmp_path / "bundle.run" / "student-last.pt"
    state = torch.load(checkpoint, weights_only=False)
    assert state["epoch"] == 2
    # A resumed run continues after the last finished epoch instead of starting again.
    assert main([*args[:-1], "--epochs", "3", "--resume", "--no-progress"]) == 0
    assert torch.load(checkpoint, weights_only=False)["epoch"] == 3


def test_export_checkpoint_to_bundle(tiny_data, tmp_path):
    run = tmp_path / "run"
    train_teacher(tiny_data, run)
    out = tmp_path / "exported"
    assert main(["-q", "trainer", "export", str(run / "teacher.pt"), "--out", str(out), "--data", str(tiny_data)]) == 0
    from edge_agent.runtime.inspector import Inspector

    inspector = Inspector.open(str(out))
    (verdict,), _ = inspector.inspect([np.zeros((40, 40, 3), np.uint8)])
    assert abs(sum(verdict.scores.values()) - 1.0) < 1e-3
    assert verdict.verdict == ("fail" if verdict.defect_score >= inspector.threshold else "pass")
    assert inspector.threshold != 0.5, "--data calibrates the threshold (0.5 is the uncalibrated default)"


def test_bad_data_exits_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["trainer", "distill", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "unknown layout" in capsys.readouterr().err


def test_tune_reports_every_candidate_and_trains_the_winner(tiny_data, tmp_path):
    from edge_agent.trainer.tune import DEFAULT, REFERENCE, challengers

    out = tmp_path / "tuned"
    # One teacher epoch cannot meet an escape target; this test is about the race, not the gate.
    flags = "--teacher-epochs 1 --tune --tune-budget 1 --baseline --ship best --max-escape 1 --unlabeled"
    assert distill(tiny_data, out, flags, str(tiny_data / "val")) == 0
    report = json.loads((out / "report.json").read_text())
    tuning = report["tuning"]
    pairs = {(c["tau"], c["lam"]) for c in tuning["candidates"]}
    assert (1.0, 0.0) in pairs  # no teacher is always a candidate
    assert pairs == {REFERENCE, DEFAULT, *challengers(DEFAULT)}  # the student alone, the CLI's recipe and the grid
    assert sum(c["outcome"] == "winner" for c in tuning["candidates"]) == 1
    assert (report["tau"], report["lam"]) == (tuning["winner"]["tau"], tuning["winner"]["lam"])
    text = (out / "report.md").read_text()
    assert text.count("| winner |") == 1, "the τ/λ table marks exactly one winner"
    assert tuning["why"] in text
    assert report["shipped"] in ("student", "baseline")
    assert report["verdict"]


def write_easy_parts(root, seed: int) -> None:
    """Three classes a small student learns in a few epochs at 32 px: good, stain (darker), scratch (a line)."""
    import cv2

    rng = np.random.default_rng(seed)
    for split, count in (("train", 60), ("val", 60), ("test", 10)):
        for kind in ("good", "stain", "scratch"):
            folder = root / split / kind
            folder.mkdir(parents=True)
            for i in range(count):
                gray = rng.normal(128, 20, (32, 32))
                if kind == "stain":
                    gray -= 60
                if kind == "scratch":
                    row = rng.integers(4, 28)
                    gray[row : row + 3] += 90
                cv2.imwrite(str(folder / f"{i}.png"), np.clip(gray, 0, 255).astype(np.uint8))


def test_tune_picks_no_teacher_when_the_teacher_learned_shuffled_labels(tmp_path, capsys):
    """A teacher that memorised shuffled labels is useless; `--tune` must fall back to λ = 0 and say why."""
    from edge_agent.trainer.checkpoint import save_model
    from edge_agent.trainer.distill import DistillOptions, prepare
    from edge_agent.trainer.fit import FitConfig, fit
    from edge_agent.trainer.models import create_model
    from edge_agent.trainer.tensors import ImageSet

    data = tmp_path / "parts"
    write_easy_parts(data, seed=1)
    prep = prepare(DistillOptions(data=data, out=tmp_path / "x", image_size=32), torch.device("cpu"))
    shuffled = prep.train.labels[torch.randperm(len(prep.train), generator=torch.Generator().manual_seed(1))]
    train = ImageSet(prep.train.images, shuffled, prep.train.paths, [])
    torch.manual_seed(1)
    teacher = create_model("resnet18", len(prep.splits.classes))
    fit(teacher, train, train, prep.norm, FitConfig(epochs=25, augment=False, progress=False), label="shuffled")
    checkpoint = tmp_path / "useless-teacher.pt"
    save_model(checkpoint, teacher, "resnet18", prep.splits.classes, prep.splits.good_class, prep.spec)

    out = tmp_path / "tuned"
    # Enough epochs for the student alone to learn these parts (~95 % on validation), so that a teacher
    # that hurts shows it; 60 validation images a class keep one lucky image from deciding.
    flags = f"--teacher {checkpoint} --tune --tune-budget 1 --teacher-views 4 --seed 1 --batch-size 16"
    assert distill(data, out, flags, "--epochs", "12") == 0
    report = json.loads((out / "report.json").read_text())
    assert report["tuning"]["winner"]["lam"] == 0.0
    assert report["lam"] == 0.0
    assert "baseline" in report  # the student alone the tuner trained is shown without --baseline
    assert "λ = 0 won" in report["tuning"]["why"]
    assert "λ = 0 won" in (out / "report.md").read_text()
    assert "--tune: λ = 0 won" in capsys.readouterr().out


def test_a_bundle_that_misses_a_gate_is_written_and_the_exit_is_3(tiny_data, tmp_path, capsys):
    out = tmp_path / "bundle"
    code = distill(tiny_data, out, "--teacher-epochs 1 --batch-size 16 --max-escape 1 --fail-under 0.99")
    assert code == 3
    assert (out / "model.onnx").is_file(), "written for diagnosis"
    report = json.loads((out / "report.json").read_text())
    assert "--fail-under 99.0 %" in report["gate"]
    assert "## Gate" in (out / "report.md").read_text()
    assert "NOT FIT FOR A LINE" in capsys.readouterr().err
    assert (out / "scores.png").is_file()
    assert report["data"]["root"] == tiny_data.name, "no workstation paths in the report"
    for written in ("report.json", "report.md", "manifest.json"):
        assert str(tmp_path) not in (out / written).read_text(), f"{written} names the training machine's folders"
    for kind in ("escaped", "overkill"):
        for row in report["mistakes"][kind]:
            assert not row["path"].startswith("/")
    options = json.loads((out / "manifest.json").read_text())["trainer"]["options"]
    assert options["epochs"] == 2
    assert options["baseline"] is False
