"""Rebuild models/demo: the small bundle shipped in the repository so `run` and `predict` work before training.

Made by `trainer distill` on synthetic data, like any user bundle; its training run stays out of the tree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "demo-out" / "demo-bundle"
TARGET = ROOT / "models" / "demo"
KEEP = {"manifest.json", "model.onnx", "report.md", "report.json", "confusion.png", "curves.png"}


def main() -> int:
    data = WORK / "data"
    if not data.exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "edge_agent",
                "trainer",
                "synth",
                str(data),
                "--per-class",
                "160",
                "--image-size",
                "64",
                "--seed",
                "11",
            ],
            check=True,
        )
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
            "--teacher-epochs",
            "30",
            "--epochs",
            "40",
            "--image-size",
            "64",
            "--tau",
            "2",
            "--lam",
            "1",
            "--baseline",
            "--ship",
            "best",
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
