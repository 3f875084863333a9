"""`edge-agent trainer ...`: the workstation commands. Torch is imported only inside the handlers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge_agent.cli.arguments import BACKENDS, positive_int
from edge_agent.trainer_options import add_flags, options_from


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

    photos = sub.add_parser(
        "photos",
        help="write a defect data set from real photographs (needs the photos extra)",
        description="Crop texture photographs (scikit-image's brick, gravel, grass) and draw scratches, "
        "cracks, stains and pits on them with defect-synthesis, as train/val/test/<class>/*.png: "
        "--per-class training images per class, a third as many for validation and for test. "
        "Needs: pip install 'edge-inspection-agent[photos]'.",
    )
    photos.add_argument("out", type=Path, help="output folder")
    photos.add_argument(
        "--photos", nargs="+", default=["brick", "gravel"], choices=["brick", "gravel", "grass"], metavar="NAME",
        help="photographs to crop: brick, gravel, grass (brick gravel)",
    )  # fmt: skip
    photos.add_argument("--per-class", type=positive_int, default=120, help="training images per class (120)")
    photos.add_argument("--image-size", type=positive_int, default=128, help="square image size in pixels (128)")
    photos.add_argument("--seed", type=int, default=0, help="random seed (0)")
    photos.set_defaults(func=cmd_photos)

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
    add_flags(distill, "distill")
    distill.set_defaults(func=cmd_distill)

    teacher = sub.add_parser(
        "teacher",
        help="train the teacher alone",
        description="Train the teacher and write RUN_DIR/teacher.pt for --teacher.",
    )
    add_flags(teacher, "teacher")
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


def cmd_photos(args: argparse.Namespace) -> int:
    from edge_agent.data.photos import CLASSES, write_dataset

    if args.image_size < 32:
        from edge_agent.errors import BadInputError

        raise BadInputError(f"--image-size {args.image_size}: must be at least 32 (defects need room)")
    written = write_dataset(args.out, args.photos, args.per_class, args.image_size, args.seed)
    print(
        f"wrote {sum(written.values())} images to {args.out} ({written}; {', '.join(CLASSES)}; "
        f"photographs {', '.join(args.photos)})"
    )
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from edge_agent.trainer.distill import run_distill

    opts = options_from(args)
    report = run_distill(opts)
    if report is None:  # one of torchrun's other processes: rank 0 reports
        return 0
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
    from edge_agent.trainer.distill import run_teacher

    trained = run_teacher(options_from(args))
    if trained is not None:  # None: one of torchrun's other processes
        arch, accuracy, checkpoint = trained
        print(f"teacher {arch}: test accuracy {accuracy:.1%}; checkpoint {checkpoint}")
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
