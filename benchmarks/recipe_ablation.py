"""The trainer's recipe, one departure from the plain reference at a time, and the candidate students.

One teacher (the trainer's `fit`, from scratch) is trained once and kept beside the data; then each
variant trains the student with the trainer's own `fit` and one setting changed from the trainer's
defaults, and prints one JSON line (test accuracy, seconds). Run alone: two torch processes on 2 cores
slow each other.

    python benchmarks/recipe_ablation.py data/photo-grass --epochs 12
    python benchmarks/recipe_ablation.py data/photo-grass --variants alone distilled student:mobilenet_v2

Variants: `alone` (no teacher), `distilled` (the trainer's defaults: KD τ 2 λ 1 from cached teacher views,
a distilling student at `--kd-lr-scale` × the rate), `live-teacher` (the teacher runs on every batch instead
of its cached views), `weight-decay-0`, `onecycle` / `cosine` (the schedule; the trainer's default: cosine),
`no-bn-recalibration`, `batch-4|8|16|32`, `lr-1e-3|2e-3|4e-3|8e-3|1.6e-2`, `weight-decay-1e-2` (AdamW's
own default, the reference's), `no-turns` (flips only, the reference's augmentation), `tau-1|2|4`, `lam-0.25|2|4`,
`no-dropout`, `mixup-0.2` (a live teacher on mixed pairs), `feature-kd` (KD plus a FitNets hint, live teacher),
`kd-half` / `kd-linear` (λ 0 after half the epochs / falling linearly),
`dilated` (output stride 16), `no-zero-init` (residual branches start at torchvision's init, not at zero),
`stem-stride-2` (torchvision's stem instead of the trainer's stride-1 one), `born-again` (taught by the
teacher and the same seed's student alone, logits averaged: list `alone` first), `alone-teaches` (by the
student alone only), `dkd` / `nckd` / `nckd-1` (decoupled KD with (α, β) = (1, 8), (0, 8), (0, 1)),
`student:ARCH` / `alone:ARCH` for another torchvision student, and `A+B` for two changes at once (e.g.
`alone+stem-stride-2`). `--teacher-stem-stride 1`, `--teacher-lr`, `--teacher-batch`, `--teacher-optimizer
sgd`, `--teacher-schedule onecycle`, `--teacher-zero-residual` and `--teacher-seed` train (and cache, under their
own name) another teacher.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import time
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from splits import accuracy, decoded, test_accuracy  # benchmarks/splits.py (scripts run from benchmarks/)

from edge_agent.trainer import teaching
from edge_agent.trainer.distill import DistillOptions, fit_config
from edge_agent.trainer.fit import fit
from edge_agent.trainer.models import count_params, create_model
from edge_agent.trainer.teacher_cache import compute_teacher_views
from edge_agent.trainer.tensors import apply_augment, sample_augment
from edge_agent.trainer_options import PRECISIONS, SCHEDULES

CHANGES: dict[str, dict[str, Any]] = {
    "alone": {"lam": 0.0},
    "distilled": {},
    "live-teacher": {"cached": False},
    "weight-decay-0": {"weight_decay": 0.0},
    "weight-decay-1e-2": {"weight_decay": 1e-2},
    "lr-1e-3": {"lr": 1e-3},
    "no-turns": {"turns": False},
    "onecycle": {"schedule": "onecycle"},
    "cosine": {"schedule": "cosine"},
    "no-bn-recalibration": {"recalibrate_bn": False},
    "batch-16": {"batch_size": 16},
    "lr-4e-3": {"lr": 4e-3},
    "tau-2": {"tau": 2.0},
    "tau-1": {"tau": 1.0},
    "tau-4": {"tau": 4.0},
    "lam-2": {"lam": 2.0},
    "lam-4": {"lam": 4.0},
    "lam-0.25": {"lam": 0.25},
    "batch-8": {"batch_size": 8},
    "lr-8e-3": {"lr": 8e-3},
    "lr-2e-3": {"lr": 2e-3},
    "lr-1.6e-2": {"lr": 1.6e-2},
    "batch-4": {"batch_size": 4},
    "batch-32": {"batch_size": 32},
    "no-dropout": {"dropout": 0.0},
    "stem-stride-1": {"stem_stride": 1},
    "stem-stride-2": {"stem_stride": 2},
    "dilated": {"dilated": True},
    "no-zero-init": {"zero_init": False},
    "mixup-0.2": {"mixup": 0.2, "cached": False},
    "kd-linear": {"kd_schedule": "linear"},
    "kd-half": {"kd_schedule": "half"},
    "feature-kd": {"hint_weight": 1.0, "cached": False},
    "born-again": {"co_teacher": "alone"},
    "dkd": {"kd_decoupled": (1.0, 8.0)},
    "nckd": {"kd_decoupled": (0.0, 8.0)},
    "nckd-1": {"kd_decoupled": (0.0, 1.0)},
    "alone-teaches": {"co_teacher": "alone-only"},
    "teacher-right": {"kd_rows": "teacher-right"},
}


class Ensemble(torch.nn.Module):
    """Teachers whose logits are averaged: the ResNet teacher and the same seed's student alone."""

    def __init__(self, *models: torch.nn.Module) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)


def flips_only(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The reference's augmentation: random horizontal and vertical flips, no 90° turns."""
    return apply_augment(batch, sample_augment(batch.shape[0], generator, square=False))


def changes_of(variant: str) -> dict[str, Any]:
    """A variant's settings; `a+b` combines two variants (e.g. `alone+batch-16`)."""
    merged: dict[str, Any] = {}
    for part in variant.split("+"):
        if part.startswith(("student:", "alone:")):
            kind, arch = part.split(":", 1)
            merged.update(arch=arch, **({"lam": 0.0} if kind == "alone" else {}))
        else:
            merged.update(CHANGES[part])
    return merged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--teacher-arch", default="resnet18")
    parser.add_argument("--teacher-stem-stride", type=int, default=2, choices=(1, 2))
    parser.add_argument("--teacher-lr", type=float, help="the teacher's peak rate (default: the trainer's --lr)")
    parser.add_argument("--teacher-batch", type=int, help="the teacher's batch size (default: the trainer's)")
    parser.add_argument("--teacher-optimizer", default="adamw", choices=("adamw", "sgd"))
    parser.add_argument("--teacher-schedule", default=DistillOptions.schedule, choices=SCHEDULES)
    parser.add_argument("--teacher-zero-residual", action="store_true", help="start the teacher's branches at zero")
    parser.add_argument("--teacher-seed", type=int, default=0, help="the teacher's batches (its weights if > 0)")
    parser.add_argument("--student-arch", default=DistillOptions.student_arch)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--variants", nargs="+", default=list(CHANGES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="train each variant once per seed")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS, help="every model's train step (fit's)")
    args = parser.parse_args()
    prep = decoded(args.data, args.image_size)
    classes = len(prep.splits.classes)

    # The trainer's own defaults (`trainer distill` with no flags but the epochs), early stopping off so
    # that every variant runs its whole budget.
    opts = DistillOptions(data=args.data, out=Path("unused"), image_size=args.image_size)
    defaults = dataclasses.replace(fit_config(opts, args.epochs), progress=False, patience=0, precision=args.precision)
    # The teacher's departures from the trainer's, named in its cache file (none: the trainer's teacher).
    teacher_cfg = dataclasses.replace(
        defaults, seed=args.teacher_seed, lr=args.teacher_lr or defaults.lr,
        batch_size=args.teacher_batch or defaults.batch_size, optimizer=args.teacher_optimizer,
        schedule=args.teacher_schedule,
    )  # fmt: skip
    tag = "".join([
        "-stem1" if args.teacher_stem_stride == 1 else "", f"-lr{args.teacher_lr:g}" if args.teacher_lr else "",
        f"-batch{args.teacher_batch}" if args.teacher_batch else "",
        "-sgd" if args.teacher_optimizer == "sgd" else "",
        f"-{args.teacher_schedule}" if args.teacher_schedule != DistillOptions.schedule else "",
        "-zero" if args.teacher_zero_residual else "", f"-seed{args.teacher_seed}" if args.teacher_seed else "",
        f"-{args.precision}" if args.precision != "fp32" else "",
    ])  # fmt: skip
    saved = args.data / f".teacher-{args.teacher_arch}{tag}-{args.epochs}e-{args.image_size}px.pt"
    if args.teacher_seed:  # seed 0 keeps torch's start-up draw: the teacher every earlier table used
        torch.manual_seed(args.teacher_seed)
    teacher = create_model(
        args.teacher_arch, classes, stem_stride=args.teacher_stem_stride, zero_residual=args.teacher_zero_residual
    )
    # Variants that all train alone (e.g. teacher recipes as `alone:resnet18+...`) need no teacher.
    teaches = any(changes_of(variant).get("lam", 1.0) > 0 for variant in args.variants)
    if saved.is_file():
        teacher.load_state_dict(torch.load(saved))
    elif teaches:
        torch.manual_seed(args.teacher_seed)
        started = time.perf_counter()
        fit(teacher, prep.train, prep.val, prep.norm, teacher_cfg)
        torch.save(teacher.state_dict(), saved)
        seconds = round(time.perf_counter() - started)
        row = {"data": args.data.name, "variant": "teacher" + tag, "arch": args.teacher_arch, "seconds": seconds}
        fits = {"test_accuracy": test_accuracy(teacher, prep), "train_accuracy": accuracy(teacher, prep, "train")}
        print(json.dumps({**row, **fits}), flush=True)
    teacher.eval()
    views = None
    if teaches:
        views = compute_teacher_views(teacher, prep.train.images, prep.norm, 8, 0, precision=args.precision)
    alone_students: dict[int, torch.nn.Module] = {}  # per seed, for the variants it teaches
    for variant, seed in itertools.product(args.variants, args.seeds):
        change = changes_of(variant)
        arch, cached = change.pop("arch", args.student_arch), change.pop("cached", True)
        dropout, zero_init = change.pop("dropout", None), change.pop("zero_init", True)
        turns = change.pop("turns", True)
        co_teacher, variant_teacher, variant_views = change.pop("co_teacher", None), teacher, views
        if co_teacher is not None:
            first = alone_students[seed].eval()  # KeyError: list `alone` before it
            variant_teacher = Ensemble(teacher, first) if co_teacher == "alone" else first
            variant_views = compute_teacher_views(
                variant_teacher, prep.train.images, prep.norm, 8, 0, precision=args.precision
            )
            print(json.dumps({"data": args.data.name, "variant": variant + "-teacher", "seed": seed,
                              "test_accuracy": test_accuracy(variant_teacher, prep)}), flush=True)  # fmt: skip
        stem_stride, dilated = change.pop("stem_stride", opts.student_stem_stride), change.pop("dilated", False)
        distilling = change.get("lam", 1.0) > 0
        base = dataclasses.replace(defaults, lam=1.0, lr=opts.lr * (opts.kd_lr_scale if distilling else 1.0))
        cfg = dataclasses.replace(base, seed=seed, **change)  # the seed draws the weights and the batches
        torch.manual_seed(seed)
        options = {"dilated": True} if dilated else {}
        model = create_model(arch, classes, stem_stride=stem_stride, zero_residual=zero_init, **options)
        if dropout is not None:
            for module in model.modules():
                if isinstance(module, torch.nn.Dropout):
                    module.p = dropout
        started = time.perf_counter()
        # Flips only: the student's fresh views come from teaching.augment (a cached teacher's views keep theirs).
        views_drawn = contextlib.nullcontext() if turns else mock.patch.object(teaching, "augment", flips_only)
        with views_drawn:
            result = fit(model, prep.train, prep.val, prep.norm, cfg, teacher=variant_teacher,
                         teacher_views=variant_views if cached else None, label=variant)  # fmt: skip
        if variant == "alone":
            alone_students[seed] = model
        print(json.dumps({
            "data": args.data.name, "variant": variant, "seed": seed, "arch": arch, "stem_stride": stem_stride,
            "params": count_params(model),
            "epochs": args.epochs, "test_accuracy": test_accuracy(model, prep), "best_epoch": result.best_epoch,
            "final_train_accuracy": round(result.history[-1]["train_accuracy"], 4),
            "seconds": round(time.perf_counter() - started),
        }), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
