"""`trainer distill` under torchrun: two CPU processes (gloo), one bundle, one log, the same recipe."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow
torch = pytest.importorskip("torch")


def test_two_processes_train_one_model_and_only_rank_0_writes(tiny_data, tmp_path):
    out, work = tmp_path / "bundle", tmp_path / "work"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "edge_agent", "trainer", "distill", str(tiny_data), "--out", str(out), "--work-dir", str(work),
        "--teacher-arch", "resnet18", "--teacher-epochs", "2", "--epochs", "2", "--image-size", "32",
        "--batch-size", "16", "--baseline", "--max-escape", "1", "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    assert log.count("distributed: 2 processes (gloo)") == 1  # rank 0 says it; the other rank is quiet
    # Each epoch line once: only rank 0 logs, and both ranks agreed on when to stop.
    for model in ("teacher", "student", "baseline"):
        for epoch in (1, 2):
            assert log.count(f"{model} epoch {epoch}/2 ") == 1, (model, epoch)
    assert log.count("bundle written to") == 1
    report = json.loads((out / "report.json").read_text())
    assert report["student"]["epochs_run"] == 2
    assert set(report) >= {"teacher", "student", "baseline"}
    assert (out / "model.onnx").is_file()
    assert sorted(p.name for p in work.iterdir()) == [
        "baseline-last.pt",
        "student-last.pt",
        "teacher-last.pt",
        "teacher.pt",
    ]
