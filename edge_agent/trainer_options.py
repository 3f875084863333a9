"""The trainer's options, declared once: each is a typed field with its default, help and check, and the
command-line flags of `trainer distill` and `trainer teacher` are generated from these fields.

Torch-free on purpose: the CLI builds its parser from here on an edge box that has no trainer installed.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from edge_agent.errors import BadInputError

Check = Callable[[Any], str | None]  # a problem with the value, or None
BOTH = ("distill", "teacher")
METAVARS: dict[type, str] = {int: "N", float: "X", Path: "PATH", str: "NAME"}
DISTILL = ("distill",)
PRECISIONS = ("auto", "fp32", "bf16")  # --precision; what each means: trainer/precision.py
SCHEDULES = ("cosine", "onecycle")  # --schedule; trainer/recipe.py make_optimizer


def positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than 0"


def not_negative(value: float) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def fraction(value: float) -> str | None:
    return None if 0.0 <= value <= 1.0 else "is outside 0..1"


def one_or_two(value: int) -> str | None:
    return None if value in (1, 2) else "choose 1 or 2"


def opt(
    default: Any,
    help: str,
    *,
    check: Check | None = None,
    choices: tuple[str, ...] | None = None,
    commands: tuple[str, ...] = DISTILL,
    flags: dict[str, str] | None = None,
    metavar: str | None = None,
    show_default: bool = True,
) -> Any:
    """A field of DistillOptions with what its flag needs (`flags` renames it per command)."""
    meta: dict[str, Any] = {"help": help, "check": check, "choices": choices, "commands": commands}
    meta.update(flags=flags or {}, metavar=metavar, show_default=show_default)
    return field(default=default, metadata=meta)


@dataclass
class DistillOptions:
    data: Path = field(metadata={"help": "data set (train/<class>/... or MVTec AD layout)", "commands": BOTH})
    out: Path = field(
        metadata={
            "help": "bundle folder to write (MODEL_DIR)",
            "teacher_help": "run folder (RUN_DIR)",
            "commands": BOTH,
        }
    )
    teacher_arch: str = opt("resnet50", "torchvision name of the teacher", commands=BOTH)
    student_arch: str = opt(
        "mobilenet_v3_small", "torchvision name of the student (<= 2.3 M parameters: >= 10x smaller than ResNet-50)"
    )
    student_stem_stride: int = opt(
        1, "stride of the student's first convolution: 1 lets its first block see the image at full resolution "
        "(same parameters, ~4x the multiply-adds); 2 keeps torchvision's stem", check=one_or_two,
    )  # fmt: skip
    teacher_stem_stride: int = opt(
        2, "stride of the teacher's first convolution (1: full resolution, as the student's; ~4x the teacher's "
        "multiply-adds)", check=one_or_two, commands=BOTH,
    )  # fmt: skip
    teacher: Path | None = opt(None, "reuse a trained teacher checkpoint (skip teacher training)")
    pretrained: bool = opt(False, "start the teacher from ImageNet weights (fine-tuning recipe)", commands=BOTH)
    epochs: int = opt(30, "most student epochs (early stopping may end sooner)", check=positive)
    teacher_epochs: int = opt(
        30, "most teacher epochs (early stopping may end sooner)", check=positive, commands=BOTH,
        flags={"teacher": "--epochs"},
    )  # fmt: skip
    patience: int = opt(
        8, "stop a model after this many epochs without validation progress (0 = never)", check=not_negative,
        commands=BOTH,
    )  # fmt: skip
    cooldown: int = opt(
        4, "after such a plateau, epochs that take the learning rate down to 0 before stopping (0 = stop at "
        "once; so does a plateau where the schedule has the rate under a tenth of its peak)", check=not_negative,
        commands=BOTH,
    )  # fmt: skip
    fit_floor: float = opt(
        0.9, "a validation plateau stops a model only once it fits at least this share of its training images "
        "(a slow learner stalls below it before it rises; 0 = any plateau)", check=fraction, commands=BOTH,
        metavar="SHARE",
    )  # fmt: skip
    image_size: int = opt(128, "network input size in pixels", check=positive, commands=BOTH)
    batch_size: int = opt(16, "batch size", check=positive, commands=BOTH)
    lr: float = opt(2e-3, "peak learning rate of AdamW", check=positive, commands=BOTH)
    kd_lr_scale: float = opt(
        1.0, "a distilling student's learning rate as a multiple of --lr (the student alone keeps --lr; 2 "
        "stalled a distilled student in one of three 12-epoch runs, docs/benchmarks.md)", check=positive,
    )  # fmt: skip
    schedule: str = opt(
        "cosine", "learning-rate schedule: cosine = a linear warm-up over 1/20 of the steps, then a cosine to 0; "
        "onecycle = from --lr/25 up to --lr over the first 3/10 of the steps, then down to ~0 (torch's OneCycleLR, "
        "the plain reference's): a ResNet-18 on synth reached 96.5 against 87.5 percent at 90 epochs, and measured "
        "0-3.5 points under the cosine at 12 and 30 (docs/benchmarks.md)", choices=SCHEDULES, commands=BOTH,
    )  # fmt: skip
    weight_decay: float = opt(5e-4, "AdamW weight decay", check=not_negative, commands=BOTH)
    backbone_lr_scale: float = opt(
        1.0, "with --pretrained: backbone learning rate as a fraction of --lr (1: as fast as the new head; "
        "0.1 cost 13 points on textured parts, docs/benchmarks.md)", check=positive, commands=BOTH,
    )  # fmt: skip
    head_warmup_epochs: int = opt(
        0, "with --pretrained: epochs that train only the new head first", check=not_negative, commands=BOTH
    )
    tau: float = opt(
        2.0, "distillation temperature τ (2: with a handful of classes τ 4 flattened the teacher's ranking of the "
        "wrong ones; docs/benchmarks.md)", check=positive,
    )  # fmt: skip
    lam: float = opt(1.0, "weight λ of the distillation term (0 = no teacher)", check=not_negative)
    feature_kd: bool = opt(False, "also match features (FitNets hint, 1x1 adapter)")
    hint_weight: float = opt(1.0, "weight of the feature hint", check=not_negative)
    mixup: float = opt(0.0, "mix image pairs with Beta(a, a) weights for the students (0 = off)", check=not_negative)
    teacher_views: int = opt(
        8, "run the teacher once on N augmented views of each image and reuse its outputs "
        "(0 = run it on every batch; --mixup/--feature-kd always do)", check=not_negative,
    )  # fmt: skip
    baseline: bool = opt(False, "also train the student without the teacher")
    tune: bool = opt(False, "choose τ and λ (λ = 0 included) on validation")
    tune_budget: float = opt(
        4.0, "tuning cost in full student trainings, the three full-length finalists included (raised to 3)",
        check=positive,
    )  # fmt: skip
    unlabeled: Path | None = opt(None, "extra unlabelled images; the teacher labels them for KD")
    unlabeled_min_confidence: float = opt(
        0.0, "keep unlabelled images the teacher is at least this sure of", check=fraction
    )
    unlabeled_ratio: float = opt(
        1.0, "unlabelled images in each batch per labelled image; an epoch stays one pass over the labelled",
        check=positive,
    )  # fmt: skip
    max_escape: float = opt(
        0.01, "validation escape target for the threshold; missed: exit 3 after writing the report", check=fraction
    )
    fail_under: float | None = opt(
        None, "exit 3 (after the report) if test accuracy is lower", check=fraction, metavar="ACCURACY"
    )
    max_overkill: float | None = opt(
        None, "exit 3 (after the report) if test overkill is higher", check=fraction, metavar="RATE"
    )
    target_overkill: float = opt(0.1, "overkill at which --tune compares escape", check=fraction)
    ship: str = opt(
        "student", "best: ship the baseline when it is the better line model on validation (escape target met, "
        "then clearly more accurate, then fewer good parts failed at its threshold)",
        choices=("student", "best"),
    )  # fmt: skip
    int8: bool = opt(False, "also quantize for CPU (kept only when it wins)")
    precision: str = opt(
        "auto", "arithmetic of the training steps (weights and losses stay float32): auto = bf16 on a CPU with "
        "native bfloat16 (AVX-512 BF16, AMX; ResNet steps ~1.7x faster), float16 mixed precision on CUDA, else fp32",
        choices=PRECISIONS, commands=BOTH,
    )  # fmt: skip
    seed: int = opt(0, "random seed", commands=BOTH)
    device: str = opt("auto", "where to train (auto: cuda if present)", choices=("auto", "cpu", "cuda"), commands=BOTH)
    good_class: str = opt("good", "the passing class", commands=BOTH)
    resume: bool = opt(False, "continue an interrupted run from its checkpoints", commands=BOTH)
    work_dir: Path | None = opt(None, "checkpoints folder (default: OUT.run beside OUT)", commands=BOTH)
    name: str | None = opt(None, "bundle name (default: the folder name)")
    progress: bool = opt(True, "progress bars on a terminal (epoch lines stay)", commands=BOTH)

    def __post_init__(self) -> None:
        for spec in fields(self):
            value, check = getattr(self, spec.name), spec.metadata.get("check")
            problem = check(value) if check is not None and value is not None else None
            choices = spec.metadata.get("choices")
            if choices and value not in choices:
                problem = f"choose one of {', '.join(choices)}"
            if problem:
                raise BadInputError(f"{flag_of(spec.name, 'distill')} {value!r}: {problem}")
        if self.head_warmup_epochs and self.schedule != "cosine":
            # One-cycle steps every group on one curve; the head's warm-up holds the backbone at 0 first.
            raise BadInputError(f"--head-warmup-epochs {self.head_warmup_epochs}: needs --schedule cosine")

    @property
    def gates(self) -> dict[str, float]:
        """The quality gates asked for (exit 3 when missed)."""
        asked = {"fail_under": self.fail_under, "max_overkill": self.max_overkill}
        return {name: value for name, value in asked.items() if value is not None}


def flag_of(name: str, command: str) -> str:
    if name == "data":
        return "DATA"
    spec = next(spec for spec in fields(DistillOptions) if spec.name == name)
    return spec.metadata.get("flags", {}).get(command) or "--" + name.replace("_", "-")


def _value_type(name: str) -> type:
    hint = typing.get_type_hints(DistillOptions)[name]
    if isinstance(hint, types.UnionType):  # `X | None`
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def add_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """Add every option of `command` to its parser, generated from the fields above."""
    for spec in fields(DistillOptions):
        meta = spec.metadata
        if command not in meta["commands"]:
            continue
        kind = _value_type(spec.name)
        if spec.name == "data":
            parser.add_argument("data", type=Path, help=meta["help"])
            continue
        flag = flag_of(spec.name, command)
        if spec.name == "out":
            parser.add_argument(flag, type=Path, required=True, help=meta.get(f"{command}_help", meta["help"]))
        elif kind is bool and spec.default is True:
            parser.add_argument(f"--no-{flag[2:]}", dest=spec.name, action="store_false", help=f"no {meta['help']}")
        elif kind is bool:
            parser.add_argument(flag, dest=spec.name, action="store_true", help=meta["help"])
        else:
            shown = f" ({spec.default})" if meta["show_default"] and spec.default not in (None, MISSING) else ""
            parser.add_argument(
                flag, dest=spec.name, type=kind, default=spec.default, choices=meta["choices"],
                metavar=meta["metavar"] or (None if meta["choices"] else METAVARS.get(kind)), help=meta["help"] + shown,
            )  # fmt: skip


def options_from(args: argparse.Namespace, **overrides: Any) -> DistillOptions:
    """DistillOptions from the parsed flags of either command (checks run in DistillOptions)."""
    given = {spec.name: getattr(args, spec.name) for spec in fields(DistillOptions) if hasattr(args, spec.name)}
    # Bars only on a terminal: in a log file or CI they are carriage-return frames (an epoch line stays).
    given["progress"] = given.get("progress", True) and sys.stderr.isatty()
    return DistillOptions(**{**given, **overrides})
