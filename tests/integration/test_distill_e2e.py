"""A tiny but real `trainer distill` run through the CLI: complete bundle, ONNX = PyTorch, report."""

import json

import numpy as np
import pytest

from edge_agent.cli import main

pytestmark = pytest.mark.slow
torch = pytest.importorskip("torch")


def test_distill_writes_a_complete_bundle(tiny_data, tmp_path, capsys):
    out = tmp_path / "bundle"
    code = main(
        [
            "-q",
            "trainer",
            "distill",
            str(tiny_data),
            "--out",
            str(out),
            "--teacher-arch",
            "resnet18",
            "--epochs",
            "2",
            "--teacher-epochs",
            "2",
            "--image-size",
            "32",
            "--batch-size",
            "16",
            "--baseline",
            "--no-progress",
            "--feature-kd",
        ]
    )
    assert code == 0
    for name in ("model.onnx", "manifest.json", "report.json", "report.md", "confusion.png", "curves.png"):
        assert (out / name).is_file(), name
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
    assert report["teacher"]["params"] >= 5 * report["student"]["params"]
    for key in ("escape_rate", "overkill_rate"):
        assert key in report["student"]
    assert report["tau"] == 4.0
    assert report["lam"] == 1.0
    assert "| student |" in (out / "report.md").read_text()

    # The bundle's ONNX gives the same predictions in ONNX Runtime as the student in PyTorch.
    from edge_agent.runtime.evaluate import evaluate_bundle

    evaluation = evaluate_bundle(out, tiny_data)
    assert evaluation["accuracy"] == pytest.approx(report["student"]["test_accuracy"], abs=0.005)
    assert evaluation["escape_rate"] == pytest.approx(report["student"]["escape_rate"], abs=0.005)


def test_teacher_then_distill_with_resume(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert (
        main(
            [
                "-q",
                "trainer",
                "teacher",
                str(tiny_data),
                "--out",
                str(run),
                "--teacher-arch",
                "resnet18",
                "--epochs",
                "1",
                "--image-size",
                "32",
                "--no-progress",
            ]
        )
        == 0
    )
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
    assert (
        main(
            [
                "-q",
                "trainer",
                "teacher",
                str(tiny_data),
                "--out",
                str(run),
                "--teacher-arch",
                "resnet18",
                "--epochs",
                "1",
                "--image-size",
                "32",
                "--no-progress",
            ]
        )
        == 0
    )
    out = tmp_path / "exported"
    assert main(["-q", "trainer", "export", str(run / "teacher.pt"), "--out", str(out), "--data", str(tiny_data)]) == 0
    from edge_agent.runtime.inspector import Inspector

    inspector = Inspector.open(str(out))
    verdicts, _ = inspector.inspect([np.zeros((40, 40, 3), np.uint8)])
    assert verdicts[0].verdict in ("pass", "fail")


def test_bad_data_exits_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["trainer", "distill", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "unknown layout" in capsys.readouterr().err
