"""Rebuild models/demo: the small bundle shipped in the repository so `run` and `predict` work before training.

Made by `trainer distill --tune --unlabeled` on synthetic data (64 px), like any user bundle; its training run
stays out of the tree. The student is the default MobileNetV3-Small, so the bundle stays a few MB in git.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "demo-out" / "demo-bundle"
TARGET = ROOT / "models" / "demo"
KEEP = {"manifest.json", "model.onnx", "report.md", "report.json", "confusion.png", "curves.png", "tradeoff.png"}


def main() -> int:
    data, unlabeled = WORK / "data", WORK / "unlabeled"
    # 480 labelled training images, and 2,500 more from the same line standing in for unlabelled production
    # images (their folders' class names are never read: --unlabeled takes every image under the folder).
    for folder, per_class, seed in ((data, 160, 11), (unlabeled, 500, 12)):
        if not folder.exists():
            synth = ["trainer", "synth", str(folder), "--per-class", str(per_class), "--image-size", "64"]
            subprocess.run([sys.executable, "-m", "edge_agent", *synth, "--seed", str(seed)], check=True)
    bundle = WORK / "demo"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_agent",
            "trainer",
            "distill",
            str(data),
            "--out",
            str(bundle),
            "--name",
            "demo",
            "--teacher-arch",
            "resnet18",
            "--student-arch",
            "mobilenet_v3_small",
            "--teacher-epochs",
            "90",
            "--image-size",
            "64",
            "--tune",
            "--unlabeled",
            str(unlabeled),
            "--max-escape",
            "0.05",
            "--no-progress",
        ],
        check=True,
    )
    if TARGET.exists():
        shutil.rmtree(TARGET)
    TARGET.mkdir(parents=True)
    for name in KEEP:
        shutil.copy2(bundle / name, TARGET / name)
    # report.json names paths on the machine that built it; the bundle's own files are what matter.
    subprocess.run(
        [sys.executable, "-m", "edge_agent", "predict", str(TARGET), str(next((data / "test" / "good").glob("*.png")))],
        check=True,
    )
    print(f"models/demo rebuilt from {bundle}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
