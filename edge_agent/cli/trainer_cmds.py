"""`edge-agent trainer ...`: the workstation commands. Torch is imported only inside the handlers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge_agent.cli.arguments import BACKENDS, DEVICES, positive_int, unit_interval

# The one place the CLI's student default is written; DistillOptions holds the same (a test keeps them equal).
DEFAULT_STUDENT = "mobilenet_v3_small"


def register(commands: Any) -> None:
    trainer = commands.add_parser(
        "trainer",
        help="workstation side: data, training, distillation, export",
        description="Workstation commands (they need the trainer extra: pip install '.[trainer]' in a checkout).",
    )
    sub = trainer.add_subparsers(dest="trainer_command", metavar="STEP", required=True)

    synth = sub.add_parser(
        "synth",
        help="write a synthetic surface-defect data set",
        description="Write brushed/cast/woven surfaces with scratch, crack, stain and pit "
        "defects as train/val/test/<class>/*.png.",
    )
    synth.add_argument("out", type=Path, help="output folder")
    synth.add_argument("--per-class", type=int, default=100, help="images per class over all splits (100)")
    synth.add_argument("--image-size", type=int, default=128, help="square image size in pixels (128)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (0)")
    synth.set_defaults(func=cmd_synth)

    distill = sub.add_parser(
        "distill",
        help="teacher → student → evaluation → threshold → bundle",
        description="The whole workstation job: train (or load) the teacher, distil the "
        "student with L = CE + λ·τ²·KL, evaluate, calibrate, export a bundle.",
        epilog="examples:\n  edge-agent trainer distill data/ --out models/press7 --baseline\n"
        "  edge-agent trainer distill data/ --out models/press7 --teacher runs/t/teacher.pt --tune --unlabeled prod/\n"
        "  edge-agent trainer distill data/ --out models/press7 --fail-under 0.9 --max-overkill 0.1   # a CI gate\n"
        "exit codes: 0 shipped, 3 written but a gate was missed, 2 bad input",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    distill.add_argument("data", type=Path, help="data set (train/<class>/... or MVTec AD layout)")
    distill.add_argument("--out", type=Path, required=True, help="bundle folder to write (MODEL_DIR)")
    add_training_flags(distill)
    distill.add_argument("--student-arch", default=DEFAULT_STUDENT, help=f"torchvision name ({DEFAULT_STUDENT})")
    distill.add_argument("--teacher", type=Path, help="reuse a trained teacher checkpoint (skip teacher training)")
    distill.add_argument("--teacher-epochs", type=int, default=90, help="teacher epochs (90)")
    distill.add_argument("--tau", type=float, default=4.0, help="distillation temperature τ (4)")
    distill.add_argument("--lam", type=float, default=1.0, help="weight λ of the distillation term (1; 0 = no teacher)")
    distill.add_argument("--feature-kd", action="store_true", help="also match features (FitNets hint, 1×1 adapter)")
    distill.add_argument("--hint-weight", type=float, default=1.0, help="weight of the feature hint (1)")
    distill.add_argument(
        "--mixup", type=float, default=0.0, help="mix image pairs with Beta(a, a) weights for the students (0 = off)"
    )
    distill.add_argument(
        "--teacher-views",
        type=int,
        default=8,
        help="run the teacher once on N augmented views of each image and reuse its outputs "
        "(8; 0 = run it on every batch; --mixup/--feature-kd always do)",
    )
    distill.add_argument("--baseline", action="store_true", help="also train the student without the teacher")
    distill.add_argument("--tune", action="store_true", help="choose τ and λ (λ = 0 included) on validation")
    distill.add_argument(
        "--tune-budget",
        type=float,
        default=4.0,
        help="tuning cost in full student trainings, the three full-length finalists included (4; at least 3)",
    )
    distill.add_argument("--unlabeled", type=Path, help="extra unlabelled images; the teacher labels them for KD")
    distill.add_argument(
        "--unlabeled-min-confidence",
        type=float,
        default=0.0,
        help="keep unlabelled images the teacher is at least this sure of (0)",
    )
    distill.add_argument(
        "--unlabeled-ratio",
        type=float,
        default=1.0,
        help="unlabelled images in each batch per labelled image (1); an epoch stays one pass over the labelled",
    )
    distill.add_argument(
        "--max-escape",
        type=unit_interval,
        default=0.01,
        help="validation escape target for the threshold (0.01); missed: exit 3 after writing the report",
    )
    distill.add_argument(
        "--fail-under",
        type=unit_interval,
        metavar="ACCURACY",
        help="exit 3 (after the report) if test accuracy is lower",
    )
    distill.add_argument(
        "--max-overkill",
        type=unit_interval,
        metavar="RATE",
        help="exit 3 (after the report) if test overkill is higher",
    )
    distill.add_argument(
        "--target-overkill", type=float, default=0.1, help="overkill at which --tune compares escape (0.1)"
    )
    distill.add_argument(
        "--ship",
        choices=("student", "best"),
        default="student",
        help="best: ship the baseline when it beats the distilled student on validation",
    )
    distill.add_argument("--int8", action="store_true", help="also quantize for CPU (kept only when it wins)")
    distill.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoints")
    distill.add_argument("--name", help="bundle name (folder name)")
    distill.set_defaults(func=cmd_distill)

    teacher = sub.add_parser(
        "teacher",
        help="train the teacher alone",
        description="Train the teacher and write RUN_DIR/teacher.pt for --teacher.",
    )
    teacher.add_argument("data", type=Path, help="data set")
    teacher.add_argument("--out", type=Path, required=True, help="run folder (RUN_DIR)")
    add_training_flags(teacher, epochs=90, epochs_help="teacher epochs (90)")
    teacher.add_argument("--resume", action="store_true", help="continue from RUN_DIR/teacher-last.pt")
    teacher.set_defaults(func=cmd_teacher)

    export = sub.add_parser(
        "export", help="checkpoint → bundle", description="Export a model checkpoint to a bundle (ONNX + manifest)."
    )
    export.add_argument("checkpoint", type=Path, help="checkpoint written by the trainer (*.pt)")
    export.add_argument("--out", type=Path, required=True, help="bundle folder")
    export.add_argument("--data", type=Path, help="data set for threshold calibration and parity images")
    export.add_argument("--int8", action="store_true", help="also write model.int8.onnx (needs --calib)")
    export.add_argument("--calib", type=Path, help="data set for INT8 calibration and its accuracy check")
    export.add_argument("--threshold", type=float, help="threshold to store (default: calibrate on --data)")
    export.add_argument("--seed", type=int, default=0, help="seed of the held-out splits (0)")
    export.set_defaults(func=cmd_export)

    evaluate = sub.add_parser(
        "evaluate",
        help="metrics of a bundle on a data set (same runtime as the agent)",
        description="Run a bundle over the test split of a data set through the edge runtime.",
    )
    evaluate.add_argument("model_dir", type=Path, help="bundle folder")
    evaluate.add_argument("data", type=Path, help="data set")
    evaluate.add_argument("--backend", default="auto", choices=BACKENDS, help="inference backend (auto)")
    evaluate.add_argument("--split", default="test", choices=("train", "val", "test"), help="split (test)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of held-out splits; use the training seed")
    evaluate.add_argument("--good-class", default="good", help="the passing class (good)")
    evaluate.add_argument("--json", action="store_true", help="one JSON object on stdout")
    evaluate.set_defaults(func=cmd_evaluate)

    engine = sub.add_parser(
        "build-engine",
        help="TensorRT engine for this device, written into the bundle",
        description="Build a TensorRT engine from the bundle's ONNX on this GPU.",
    )
    engine.add_argument("model_dir", type=Path, help="bundle folder")
    engine.add_argument("--fp16", action="store_true", help="FP16 engine (default when neither flag is given)")
    engine.add_argument("--int8", action="store_true", help="INT8 engine (needs --calib unless the bundle has a cache)")
    engine.add_argument("--calib", type=Path, help="data set for INT8 calibration")
    engine.add_argument("--max-batch", type=positive_int, default=16, help="largest batch of the profile (16)")
    engine.set_defaults(func=cmd_build_engine)


def add_training_flags(
    parser: argparse.ArgumentParser, epochs: int = 90, epochs_help: str = "student epochs (90)"
) -> None:
    parser.add_argument("--teacher-arch", default="resnet50", help="torchvision name (resnet50)")
    parser.add_argument("--pretrained", action="store_true", help="start the teacher from ImageNet weights")
    parser.add_argument("--epochs", type=int, default=epochs, help=epochs_help)
    parser.add_argument("--image-size", type=int, default=128, help="network input size in pixels (128)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (32)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of AdamW (0.002)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--device", default="auto", choices=DEVICES, help="where to train (auto: cuda if present)")
    parser.add_argument("--good-class", default="good", help="the passing class (good)")
    parser.add_argument("--work-dir", type=Path, help="checkpoints folder (default: OUT.run beside OUT)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (epoch lines stay)")


def positive(name: str, value: float) -> None:
    from edge_agent.errors import BadInputError

    if value <= 0:
        raise BadInputError(f"{name} must be positive, got {value}")


def cmd_synth(args: argparse.Namespace) -> int:
    from edge_agent.data.synth import write_dataset

    positive("--per-class", args.per_class)
    if args.per_class < 3 or args.image_size < 16:
        from edge_agent.errors import BadInputError

        raise BadInputError("--per-class must be >= 3 and --image-size >= 16")
    written = write_dataset(args.out, args.per_class, args.image_size, args.seed)
    print(f"wrote {sum(written.values())} images to {args.out} ({written})")
    return 0


def distill_options(args: argparse.Namespace, **overrides: Any) -> Any:
    from edge_agent.trainer.distill import DistillOptions

    for flag in ("epochs", "image_size", "batch_size", "lr"):
        positive(f"--{flag.replace('_', '-')}", getattr(args, flag))
    fields = {
        k: getattr(args, k)
        for k in (
            "data",
            "out",
            "teacher_arch",
            "pretrained",
            "epochs",
            "image_size",
            "batch_size",
            "lr",
            "seed",
            "device",
            "good_class",
            "work_dir",
            "resume",
        )
        if hasattr(args, k)
    }
    # Bars only on a terminal: in a log file or CI they are carriage-return frames (an epoch line stays).
    fields["progress"] = not args.no_progress and sys.stderr.isatty()
    fields.update(overrides)
    return DistillOptions(**fields)


def cmd_distill(args: argparse.Namespace) -> int:
    from edge_agent.trainer.distill import run_distill

    positive("--teacher-epochs", args.teacher_epochs)
    positive("--tau", args.tau)
    positive("--unlabeled-ratio", args.unlabeled_ratio)
    if args.teacher_views < 0:
        from edge_agent.errors import BadInputError

        raise BadInputError(f"--teacher-views must be 0 or more, got {args.teacher_views}")
    opts = distill_options(
        args,
        student_arch=args.student_arch,
        teacher=args.teacher,
        teacher_epochs=args.teacher_epochs,
        tau=args.tau,
        lam=args.lam,
        feature_kd=args.feature_kd,
        mixup=args.mixup,
        teacher_views=args.teacher_views,
        hint_weight=args.hint_weight,
        baseline=args.baseline,
        tune=args.tune,
        tune_budget=args.tune_budget,
        unlabeled=args.unlabeled,
        unlabeled_min_confidence=args.unlabeled_min_confidence,
        unlabeled_ratio=args.unlabeled_ratio,
        max_escape=args.max_escape,
        target_overkill=args.target_overkill,
        ship=args.ship,
        int8=args.int8,
        name=args.name,
        gates={
            key: value
            for key, value in (("fail_under", args.fail_under), ("max_overkill", args.max_overkill))
            if value is not None
        },
    )
    report = run_distill(opts)
    print_summary(report)
    if report.get("gate"):
        print(f"edge-agent: {report['gate']}", file=sys.stderr)
        return EXIT_GATE
    return 0


EXIT_GATE = 3  # the job ran and wrote its report, but what it made is not fit for a line


def print_summary(report: dict[str, Any]) -> None:
    print(f"\nbundle written to {report['bundle']['path']} (threshold {report['threshold']:.4f})")
    print(f"{'model':<9} {'arch':<20} {'params':>11} {'accuracy':>9} {'escape':>8} {'overkill':>9}")
    for name in ("teacher", "student", "baseline"):
        if name in report:
            r = report[name]
            print(
                f"{name:<9} {r['arch']:<20} {r['params']:>11,} {r['test_accuracy']:>9.1%} "
                f"{r['escape_rate']:>8.1%} {r['overkill_rate']:>9.1%}"
            )
    if "tuning" in report:
        print(f"--tune: {report['tuning']['why']}")
    if report.get("teacher_lead"):
        print(report["teacher_lead"])
    if report.get("equal_overkill"):
        from edge_agent.trainer.report import equal_overkill_line

        print(equal_overkill_line(report["equal_overkill"]))
    if "tuning" not in report:  # with --tune the verdict is the --tune line above
        print(report["verdict"])
    print(f"report: {report['bundle']['path']}/report.md")


def cmd_teacher(args: argparse.Namespace) -> int:
    from edge_agent.trainer.distill import prepare, train_teacher

    opts = distill_options(args, teacher_epochs=args.epochs)
    work = args.work_dir or args.out
    args.out.mkdir(parents=True, exist_ok=True)
    from edge_agent.trainer.distill import evaluate_model, pick_device

    prep = prepare(opts, pick_device(args.device))
    model, arch, _ = train_teacher(opts, prep, work)
    if work != args.out:
        import shutil

        shutil.copy2(work / "teacher.pt", args.out / "teacher.pt")
    ev = evaluate_model(model, prep.test, prep, 0.5)
    print(f"teacher {arch}: test accuracy {ev['accuracy']:.1%}; checkpoint {args.out / 'teacher.pt'}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from edge_agent.trainer.exporting import export_checkpoint

    manifest = export_checkpoint(
        args.checkpoint,
        args.out,
        data=args.data,
        threshold=args.threshold,
        int8=args.int8,
        calib=args.calib,
        seed=args.seed,
    )
    print(
        f"bundle written to {args.out} ({manifest.student.arch}, model file {manifest.model_file}, "
        f"threshold {manifest.threshold:.4f})"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from edge_agent.runtime.tools.evaluate import evaluate_bundle, format_evaluation

    result = evaluate_bundle(
        args.model_dir, args.data, backend=args.backend, split=args.split, seed=args.seed, good_class=args.good_class
    )
    print(json.dumps(result) if args.json else format_evaluation(result))
    return 0


def cmd_build_engine(args: argparse.Namespace) -> int:
    from edge_agent.runtime.tools.engine_build import build_engine

    precision = "int8" if args.int8 else "fp16"
    entry = build_engine(args.model_dir, precision=precision, calib=args.calib, max_batch=args.max_batch)
    print(f"engine {entry.file} written into {args.model_dir}")
    return 0
