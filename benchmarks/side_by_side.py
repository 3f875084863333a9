"""The trainer against the plain reference recipe, side by side: same data, same models, same epochs.

For each data set and epoch budget: `benchmarks/reference.py` (teacher, student alone, distilled student)
and `edge-agent trainer distill --baseline` as a user runs it (its defaults, early stopping included),
one after the other on this machine. One JSON line per run, appended to --out; each run's progress lines
appended to the same path with .log; run alone (two torch processes on 2 cores slow each other 10-20x).

    python benchmarks/side_by_side.py data/photo-grass data/photo-brick-gravel --epochs 12 30
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRAINED = ("teacher", "baseline", "student")  # the models of a `--baseline` run


def run_logged(command: list[str], log: Path) -> subprocess.CompletedProcess[str]:
    """Run one training, its stdout kept, its progress lines (stderr) appended to `log`: a 90-epoch run takes
    an hour or more on 2 cores, and `tail -f` on the log is how one sees where it is."""
    with log.open("a") as sink:
        sink.write(f"$ {' '.join(command)}\n")
        sink.flush()
        return subprocess.run(command, stdout=subprocess.PIPE, stderr=sink, text=True, check=False)


def failed(what: str, done: subprocess.CompletedProcess[str], log: Path) -> SystemExit:
    return SystemExit(f"{what} failed ({done.returncode}); its output is at the end of {log}")


def reference(data: Path, epochs: int, teacher: str, student: str, size: int, log: Path) -> dict[str, object]:
    command = [sys.executable, str(HERE / "reference.py"), str(data), "--epochs", str(epochs)]
    command += ["--teacher-arch", teacher, "--student-arch", student, "--size", str(size)]
    started = time.perf_counter()
    done = run_logged(command, log)
    if done.returncode != 0:
        raise failed("reference", done, log)
    printed = done.stdout
    row = json.loads(printed.strip().splitlines()[-1])
    return {
        "recipe": "reference",
        **{k: row[k]["accuracy"] for k in ("teacher", "alone", "distilled")},
        "seconds": round(time.perf_counter() - started),
    }


def trainer(
    data: Path, epochs: int, teacher: str, student: str, size: int, extra: list[str], log: Path
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "bundle"
        command = [sys.executable, "-m", "edge_agent", "trainer", "distill", str(data), "--out", str(out)]
        command += ["--teacher-arch", teacher, "--student-arch", student, "--image-size", str(size)]
        command += ["--teacher-epochs", str(epochs), "--epochs", str(epochs), "--baseline", "--no-progress", *extra]
        started = time.perf_counter()
        done = run_logged(command, log)
        seconds = round(time.perf_counter() - started)
        if done.returncode not in (0, 3):  # 3: a gate (the escape target) missed; the numbers stand
            raise failed("trainer", done, log)
        report = json.loads((out / "report.json").read_text())
    return {
        "recipe": "trainer" + (" " + " ".join(extra) if extra else ""),
        "teacher": report["teacher"]["test_accuracy"],
        "alone": report["baseline"]["test_accuracy"],
        "distilled": report["student"]["test_accuracy"],
        **{key: {m: report[m][key] for m in TRAINED} for key in ("epochs_run", "final_train_accuracy")},
        "seconds": seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, nargs="+")
    parser.add_argument("--epochs", type=int, nargs="+", default=[12, 30, 90])
    parser.add_argument("--teacher-arch", default="resnet18")
    parser.add_argument("--student-arch", default="mobilenet_v3_small")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--recipes", nargs="+", default=["reference", "trainer"], choices=("reference", "trainer"))
    parser.add_argument("--trainer-flag", action="append", default=[], help="extra flag for the trainer's runs")
    parser.add_argument("--out", type=Path, default=Path("bench-out/side_by_side.jsonl"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log = args.out.with_suffix(".log")  # every run's progress lines; the rows go to --out
    for epochs in args.epochs:
        for data in args.data:
            for recipe in args.recipes:
                models = (args.teacher_arch, args.student_arch, args.image_size)
                if recipe == "reference":
                    row = reference(data, epochs, *models, log)
                else:
                    row = trainer(data, epochs, *models, args.trainer_flag, log)
                row = {"data": data.name, "epochs": epochs, **row}
                print(json.dumps(row), flush=True)
                with args.out.open("a") as sink:
                    sink.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
