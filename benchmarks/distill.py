"""Distillation benchmark: one teacher, then the same student under several recipes, on `trainer synth` data.

Prints recipes × (test accuracy, escape, overkill at each model's calibrated threshold, per-defect escape),
and the trainer's throughput against a bare loop of teacher forward + student forward/backward on the same
batches. Everything from scratch, on this CPU.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from edge_agent.data.synth import write_dataset
from edge_agent.runtime.metrics import calibrate_threshold
from edge_agent.trainer.distill import DistillOptions, evaluate_model, prepare, train_student, train_teacher
from edge_agent.trainer.fit import predict_probs
from edge_agent.trainer.models import count_params, create_model
from edge_agent.trainer.tensors import augment, to_unit

RECIPES = {
    "baseline (no teacher)": {"lam": 0.0},
    "Hinton KD tau=4 lam=1": {"tau": 4.0, "lam": 1.0},
    "KD tau=2 lam=1": {"tau": 2.0, "lam": 1.0},
    "KD tau=2 lam=0.5": {"tau": 2.0, "lam": 0.5},
    "KD tau=2 lam=1 + feature hint": {"tau": 2.0, "lam": 1.0, "feature_kd": True},
    "KD tau=2 lam=1 + unlabeled": {"tau": 2.0, "lam": 1.0, "unlabeled": True},
    "KD tau=2 lam=1 + feature hint + unlabeled": {"tau": 2.0, "lam": 1.0, "feature_kd": True, "unlabeled": True},
    "baseline + mixup": {"lam": 0.0, "mixup": 0.4},
    "function matching: KD tau=1 lam=2 + mixup": {"tau": 1.0, "lam": 2.0, "mixup": 0.4},
}


def bare_loop_rate(prep, teacher, student_arch: str, batch_size: int, steps: int = 20) -> float:
    student = create_model(student_arch, len(prep.splits.classes))
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    teacher.eval()
    started = time.perf_counter()
    for step in range(steps):
        index = torch.arange(step * batch_size, (step + 1) * batch_size) % len(prep.train)
        x = prep.norm.unit(augment(to_unit(prep.train.images[index]), generator))
        with torch.no_grad():
            teacher(x)
        loss = student(x).logsumexp(1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, help="data set (default: a fresh `trainer synth` set)")
    parser.add_argument("--work", type=Path, default=Path("bench-out/distill"))
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--per-class", type=int, default=160)
    parser.add_argument("--teacher-arch", default="resnet18")
    parser.add_argument("--student-arch", default="mobilenet_v3_small")
    parser.add_argument("--teacher-epochs", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--recipe", action="append", help="run only these recipes (names as printed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse-teacher", action="store_true", help="use WORK/run/teacher.pt from an earlier run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")  # a line per epoch
    args.work.mkdir(parents=True, exist_ok=True)
    data = args.data
    if data is None:
        data = args.work / f"synth{args.image_size}"
        if not data.exists():
            write_dataset(data, args.per_class, args.image_size, seed=args.seed)
    unlabeled_dir = args.work / f"unlabeled{args.image_size}"
    if not unlabeled_dir.exists():
        write_dataset(unlabeled_dir, args.per_class, args.image_size, seed=args.seed + 100)
    base = DistillOptions(
        data=data,
        out=args.work / "bundle",
        teacher_arch=args.teacher_arch,
        student_arch=args.student_arch,
        epochs=args.epochs,
        teacher_epochs=args.teacher_epochs,
        image_size=args.image_size,
        seed=args.seed,
        progress=False,
        work_dir=args.work / "run",
        teacher=(args.work / "run" / "teacher.pt") if args.reuse_teacher else None,
    )
    device = torch.device("cpu")
    prep = prepare(base, device)
    started = time.perf_counter()
    teacher, _, _ = train_teacher(base, prep, base.work_dir)  # type: ignore[arg-type]
    teacher_seconds = time.perf_counter() - started
    good = prep.splits.good_index
    val_is_defect = prep.val.labels.numpy() != good
    rows = []

    def record(name: str, model, seconds: float) -> None:
        probs = predict_probs(model, prep.val.images, prep.norm)
        threshold = calibrate_threshold(val_is_defect, 1 - probs[:, good], 0.05).threshold
        ev = evaluate_model(model, prep.test, prep, threshold)
        per_defect = {c: v["escape_rate"] for c, v in ev["per_class"].items() if "escape_rate" in v}
        rows.append(
            {
                "recipe": name,
                "params": count_params(model),
                "accuracy": ev["accuracy"],
                "escape": ev["escape_rate"],
                "overkill": ev["overkill_rate"],
                "per_defect_escape": per_defect,
                "seconds": seconds,
            }
        )
        print(
            f"{name}: accuracy {ev['accuracy']:.1%} escape {ev['escape_rate']:.1%} overkill "
            f"{ev['overkill_rate']:.1%} ({seconds:.0f} s)",
            flush=True,
        )

    record(f"teacher {args.teacher_arch}", teacher, teacher_seconds)
    from edge_agent.trainer.tensors import load_unlabeled

    unlabeled = load_unlabeled(unlabeled_dir / "train", prep.spec)
    throughput = None
    for name, recipe in RECIPES.items():
        if args.recipe and name not in args.recipe:
            continue
        opts = DistillOptions(
            **{**base.__dict__, "feature_kd": recipe.get("feature_kd", False), "mixup": recipe.get("mixup", 0.0)}
        )
        started = time.perf_counter()
        model, result = train_student(
            opts,
            prep,
            base.work_dir,
            teacher if recipe["lam"] > 0 else None,  # type: ignore[arg-type]
            recipe.get("tau", 4.0),
            recipe["lam"],
            "bench-" + name.split()[0],
            unlabeled=unlabeled if recipe.get("unlabeled") else None,
        )
        record(name, model, time.perf_counter() - started)
        if name.startswith("Hinton"):
            throughput = float(np.median([h["images_per_s"] for h in result.history]))
    bare = bare_loop_rate(prep, teacher, args.student_arch, 32)
    print(
        f"\n{data}: {len(prep.train)} train / {len(prep.val)} val / {len(prep.test)} test at {args.image_size} px; "
        f"teacher {args.teacher_epochs} epochs, students {args.epochs} epochs; threshold at val escape <= 5 %\n"
    )
    defects = [c for c in prep.splits.classes if c != prep.splits.good_class]
    print("| recipe | params | accuracy | escape | overkill | " + " | ".join(f"escape {d}" for d in defects) + " |")
    print("| --- | ---: | ---: | ---: | ---: |" + " ---: |" * len(defects))
    for r in rows:
        cells = " | ".join(f"{r['per_defect_escape'][d]:.0%}" for d in defects)
        print(
            f"| {r['recipe']} | {r['params']:,} | {r['accuracy']:.1%} | {r['escape']:.1%} | {r['overkill']:.1%} | "
            f"{cells} |"
        )
    if throughput:
        print(
            f"\ntrainer throughput {throughput:.0f} images/s vs bare teacher-forward + student-step loop "
            f"{bare:.0f} images/s = {throughput / bare:.2f}x"
        )
    (args.work / "results.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
