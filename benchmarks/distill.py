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
from typing import Any

import numpy as np
import torch

from edge_agent.data.layout import load_dataset
from edge_agent.data.synth import write_dataset
from edge_agent.runtime.metrics import calibrate_threshold, classification_report
from edge_agent.trainer.distill import (
    DistillOptions,
    cache_teacher,
    prepare,
    train_student,
    train_teacher,
)
from edge_agent.trainer.fit import predict_probs
from edge_agent.trainer.models import count_params, create_model
from edge_agent.trainer.paired import Gap
from edge_agent.trainer.teacher_cache import TeacherViews
from edge_agent.trainer.tensors import augment, load_images, load_unlabeled, to_unit
from edge_agent.trainer.tune import tune_tau_lambda

# "long": --long-epochs instead of --epochs; "views": --teacher-views; "tune": --tune (--tune-budget);
# "ratio": --unlabeled-ratio.
RECIPES: dict[str, dict[str, Any]] = {
    "baseline (no teacher)": {"lam": 0.0},
    "baseline (no teacher), long": {"lam": 0.0, "long": True},
    "Hinton KD tau=4 lam=1": {"tau": 4.0, "lam": 1.0},
    "Hinton KD tau=4 lam=1, cached teacher (8 views)": {"tau": 4.0, "lam": 1.0, "views": 8},
    "Hinton KD tau=4 lam=1, cached teacher (8 views), long": {"tau": 4.0, "lam": 1.0, "views": 8, "long": True},
    "KD tau=2 lam=1 + feature hint": {"tau": 2.0, "lam": 1.0, "feature_kd": True},
    "Hinton KD tau=4 lam=1, long": {"tau": 4.0, "lam": 1.0, "long": True},
    "KD tau=4 lam=1 + feature hint, long": {"tau": 4.0, "lam": 1.0, "feature_kd": True, "long": True},
    "function matching: KD tau=1 lam=2 + mixup": {"tau": 1.0, "lam": 2.0, "mixup": 0.4},
    "Hinton KD tau=4 lam=1 + unlabeled, cached teacher (4 views)": {
        "tau": 4.0,
        "lam": 1.0,
        "views": 4,
        "unlabeled": True,
    },
    "Hinton KD tau=4 lam=1 + unlabeled, cached teacher (8 views), long": {
        "tau": 4.0,
        "lam": 1.0,
        "views": 8,
        "unlabeled": True,
        "long": True,
    },
    "Hinton KD tau=4 lam=1 + 3x unlabeled, cached teacher (8 views), long": {
        "tau": 4.0,
        "lam": 1.0,
        "views": 8,
        "unlabeled": True,
        "ratio": 3.0,
        "long": True,
    },
    "--tune, cached teacher (8 views), long": {"tune": True, "views": 8, "long": True},
    "--tune + unlabeled, cached teacher (4 views), long": {"tune": True, "views": 4, "unlabeled": True, "long": True},
    # What `trainer distill --tune --unlabeled DIR` does with its defaults.
    "--tune + unlabeled, cached teacher (8 views), long": {"tune": True, "views": 8, "unlabeled": True, "long": True},
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
    parser.add_argument("--per-class", type=int, default=160, help="labelled images a class (60 % train)")
    parser.add_argument(
        "--test-per-class",
        type=int,
        default=120,
        help="extra test images a class from another seed, so one image is not half a point (0 = data's test split)",
    )
    parser.add_argument("--unlabeled-per-class", type=int, default=500, help="unlabelled images a class")
    parser.add_argument("--teacher-arch", default="resnet18")
    parser.add_argument("--student-arch", default="mobilenet_v3_large")
    parser.add_argument("--teacher-epochs", type=int, default=90)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--long-epochs", type=int, default=90, help="student epochs of the 'long' recipes")
    parser.add_argument("--tune-budget", type=float, default=4.0, help="--tune cost in full trainings (4)")
    parser.add_argument("--recipe", action="append", help="run only these recipes (names as printed)")
    parser.add_argument(
        "--kd",
        action="append",
        default=[],
        metavar="TAU,LAM[,RATIO]",
        help="also run KD at this τ, λ (cached teacher, 8 views, long), with RATIO: + unlabelled at that "
        "--unlabeled-ratio; repeatable",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (0.002)")
    parser.add_argument("--reuse-teacher", action="store_true", help="use WORK/run/teacher.pt from an earlier run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")  # a line per epoch
    args.work.mkdir(parents=True, exist_ok=True)
    data = args.data
    if data is None:
        data = args.work / f"synth{args.image_size}"
        if not data.exists():
            write_dataset(data, args.per_class, args.image_size, seed=args.seed)
    unlabeled_dir = args.work / f"unlabeled{args.image_size}-{args.unlabeled_per_class}"
    if not unlabeled_dir.exists():
        write_dataset(unlabeled_dir, args.unlabeled_per_class, args.image_size, seed=args.seed + 100)
    test_dir = args.work / f"test{args.image_size}-{args.test_per_class}"
    if args.test_per_class and not test_dir.exists():
        write_dataset(test_dir, args.test_per_class, args.image_size, seed=args.seed + 7)
    run_dir = args.work / "run"
    base = DistillOptions(
        data=data,
        out=args.work / "bundle",
        teacher_arch=args.teacher_arch,
        student_arch=args.student_arch,
        epochs=args.epochs,
        lr=args.lr,
        teacher_epochs=args.teacher_epochs,
        image_size=args.image_size,
        seed=args.seed,
        progress=False,
        work_dir=run_dir,
        teacher=(run_dir / "teacher.pt") if args.reuse_teacher else None,
    )
    device = torch.device("cpu")
    prep = prepare(base, device)
    if args.test_per_class:
        extra = load_dataset(test_dir, base.good_class, seed=args.seed)
        prep.test = load_images(extra.train + extra.val + extra.test, prep.spec, "test")
    started = time.perf_counter()
    teacher, _, _ = train_teacher(base, prep, run_dir)
    teacher_seconds = time.perf_counter() - started
    good = prep.splits.good_index
    val_is_defect = prep.val.labels.numpy() != good
    rows: list[dict[str, Any]] = []
    correct: dict[str, np.ndarray] = {}  # per test image, for paired differences against the student alone
    saved_probs: dict[str, np.ndarray] = {}  # val and test probabilities, to study thresholds offline

    def record(name: str, model, seconds: float, epochs: int) -> None:
        probs = predict_probs(model, prep.val.images, prep.norm)
        threshold = calibrate_threshold(val_is_defect, 1 - probs[:, good], 0.05).threshold
        test_probs = predict_probs(model, prep.test.images, prep.norm)  # once: the report and the paired column
        test_labels = prep.test.labels.numpy()
        ev: dict[str, Any] = classification_report(test_labels, test_probs, prep.splits.classes, good, threshold)
        correct[name] = test_probs.argmax(1) == test_labels
        saved_probs[f"{name} | val"], saved_probs[f"{name} | test"] = probs, test_probs
        arrays: dict[str, Any] = {**saved_probs, "labels | val": prep.val.labels.numpy(), "labels | test": test_labels}
        np.savez(args.work / "probs.npz", **arrays)  # good class at prep.splits.good_index
        per_defect = {c: v["escape_rate"] for c, v in ev["per_class"].items() if "escape_rate" in v}
        rows.append(
            {
                "recipe": name,
                "epochs": epochs,
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

    record(f"teacher {args.teacher_arch}", teacher, teacher_seconds, args.teacher_epochs)
    unlabeled = load_unlabeled(unlabeled_dir, prep.spec)
    views_cache: dict[tuple[int, bool], TeacherViews] = {}
    throughput = None
    recipes = dict(RECIPES)
    for spec in args.kd:
        tau, lam, *ratio = (float(v) for v in spec.split(","))
        with_unlabeled = f" + {ratio[0]:g}x unlabeled" if ratio else ""
        recipes[f"KD tau={tau:g} lam={lam:g}{with_unlabeled}, cached teacher (8 views), long"] = {
            "tau": tau,
            "lam": lam,
            "views": 8,
            "long": True,
            **({"unlabeled": True, "ratio": ratio[0]} if ratio else {}),
        }
    for name, recipe in recipes.items():
        if args.recipe and name in RECIPES and name not in args.recipe:
            continue
        opts = DistillOptions(
            **{
                **base.__dict__,
                "feature_kd": recipe.get("feature_kd", False),
                "mixup": recipe.get("mixup", 0.0),
                "teacher_views": recipe.get("views", 0),
                "epochs": args.long_epochs if recipe.get("long") else args.epochs,
                "tune_budget": args.tune_budget,
                "unlabeled_ratio": recipe.get("ratio", 1.0),
            }
        )
        extra_images = unlabeled if recipe.get("unlabeled") else None
        started = time.perf_counter()
        views = None
        if opts.teacher_views:
            key = (opts.teacher_views, extra_images is not None)
            if key not in views_cache:
                views_cache[key] = cache_teacher(opts, prep, teacher, extra_images)  # type: ignore[assignment]
            views = views_cache[key]
        tau, lam = recipe.get("tau", 4.0), recipe.get("lam", 1.0)
        if recipe.get("tune"):

            def candidate(
                t: float, lm: float, label: str, epochs: int, keep: int, o=opts, images=extra_images, cached=views
            ):
                return train_student(
                    o, prep, run_dir, teacher if lm > 0 else None, t, lm, label,
                    epochs=epochs, unlabeled=images, teacher_views=cached, keep_val_probs=keep,
                )  # fmt: skip

            tuned = tune_tau_lambda(candidate, opts, prep, teacher)
            tau, lam = tuned.report["winner"]["tau"], tuned.report["winner"]["lam"]
            for (f_tau, f_lam), (f_model, _) in tuned.finalists.items():
                if (f_tau, f_lam) != (tau, lam):
                    record(f"  {name}: finalist tau={f_tau:g} lam={f_lam:g} (not shipped)", f_model, 0.0, opts.epochs)
            name = f"{name} -> tau={tau:g} lam={lam:g}"
            model, result = tuned.winner  # trained for the full epochs in the tuner's last rung
        else:
            model, result = train_student(
                opts,
                prep,
                run_dir,
                teacher if lam > 0 else None,
                tau,
                lam,
                "bench-" + name.split()[0],
                unlabeled=extra_images,
                teacher_views=views,
            )
        record(name, model, time.perf_counter() - started, opts.epochs)
        if name.startswith("Hinton") and not opts.teacher_views:
            throughput = float(np.median([h["images_per_s"] for h in result.history]))
    bare = bare_loop_rate(prep, teacher, args.student_arch, 32)
    print(
        f"\n{data}: {len(prep.train)} train / {len(prep.val)} val / {len(prep.test)} test / "
        f"{len(unlabeled)} unlabelled "
        f"at {args.image_size} px; teacher {args.teacher_epochs} epochs, students {args.epochs} epochs; "
        "threshold at val escape <= 5 %\n"
    )
    defects = [c for c in prep.splits.classes if c != prep.splits.good_class]
    baseline = next((r["recipe"] for r in reversed(rows) if r["recipe"].startswith("baseline")), None)
    header = "| recipe | epochs | params | accuracy | vs student alone | escape | overkill | seconds | "
    print(header + " | ".join(f"escape {d}" for d in defects) + " |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" + " ---: |" * len(defects))
    for r in rows:
        cells = " | ".join(f"{r['per_defect_escape'][d]:.0%}" for d in defects)
        # The paired difference on the same test images, ± one standard error of it (test sampling only;
        # a retrained model moves by more — see the replicate tables in the README).
        gap = Gap.of(correct[r["recipe"]], correct[baseline]) if baseline else None
        versus = f"{gap.diff:+.1%} (±{gap.margin:.1%})" if gap and r["recipe"] != baseline else "—"
        r["vs_student_alone"] = gap.diff if gap else None
        print(
            f"| {r['recipe']} | {r['epochs']} | {r['params']:,} | {r['accuracy']:.1%} | {versus} | "
            f"{r['escape']:.1%} | {r['overkill']:.1%} | {r['seconds']:.0f} | "
            f"{cells} |"
        )
    if throughput:
        print(
            f"\ntrainer throughput {throughput:.0f} images/s vs bare teacher-forward + student-step loop "
            f"{bare:.0f} images/s = {throughput / bare:.2f}x"
        )
    (args.work / "results.json").write_text(json.dumps(rows, indent=2))
    per_recipe: dict[str, Any] = {r["recipe"]: correct[r["recipe"]] for r in rows}
    np.savez(args.work / "test_correct.npz", **per_recipe)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
