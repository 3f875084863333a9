"""The trainer's options are declared once (edge_agent.trainer_options): the flags come from the fields."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from edge_agent.cli import build_parser
from edge_agent.errors import BadInputError
from edge_agent.trainer_options import DistillOptions, options_from


def parse(*argv: str):
    return options_from(build_parser().parse_args(list(argv)))


def test_every_option_is_a_distill_flag_with_the_fields_default():
    parsed = parse("trainer", "distill", "data", "--out", "bundle")
    declared = DistillOptions(data=Path("data"), out=Path("bundle"), progress=parsed.progress)
    assert parsed == declared
    distill = build_parser()._subparsers._group_actions[0].choices["trainer"]
    actions = distill._subparsers._group_actions[0].choices["distill"]._actions
    dests = {a.dest for a in actions} - {"help"}
    assert dests == {f.name for f in fields(DistillOptions)}


def test_flags_reach_the_options_by_their_field_names():
    opts = parse(
        "trainer", "distill", "d", "--out", "o", "--student-arch", "mobilenet_v2", "--patience", "0",
        "--fail-under", "0.9", "--unlabeled", "u", "--no-progress", "--baseline", "--weight-decay", "0",
    )  # fmt: skip
    assert (opts.student_arch, opts.patience, opts.weight_decay) == ("mobilenet_v2", 0, 0.0)
    assert opts.gates == {"fail_under": 0.9}
    assert opts.unlabeled == Path("u")
    assert opts.baseline
    assert not opts.progress


def test_the_teacher_command_takes_its_epochs_as_teacher_epochs_and_no_student_flags():
    opts = parse("trainer", "teacher", "d", "--out", "run", "--epochs", "7", "--teacher-arch", "resnet18")
    assert (opts.teacher_epochs, opts.teacher_arch, opts.epochs) == (7, "resnet18", DistillOptions.epochs)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["trainer", "teacher", "d", "--out", "run", "--tau", "2"])


def test_the_python_api_checks_what_the_flags_check():
    with pytest.raises(BadInputError, match="--lam -1: must be 0 or more"):
        DistillOptions(data=Path("d"), out=Path("o"), lam=-1)
    with pytest.raises(BadInputError, match="--ship 'worst': choose one of student, best"):
        DistillOptions(data=Path("d"), out=Path("o"), ship="worst")


def test_the_student_stem_is_full_resolution_by_default_and_takes_only_one_or_two():
    assert parse("trainer", "distill", "d", "--out", "o").student_stem_stride == 1
    assert parse("trainer", "distill", "d", "--out", "o", "--student-stem-stride", "2").student_stem_stride == 2
    with pytest.raises(BadInputError, match="--student-stem-stride 3: choose 1 or 2"):
        parse("trainer", "distill", "d", "--out", "o", "--student-stem-stride", "3")


def test_the_distillation_recipe_is_declared_once():
    """The tuner's anchor and the shared fit config follow the CLI's τ and λ, not defaults of their own."""
    from edge_agent.trainer.distill import fit_config
    from edge_agent.trainer.tune import DEFAULT, anchor_of

    assert DEFAULT == (DistillOptions.tau, DistillOptions.lam)
    assert anchor_of(3.0, 0.0) == DEFAULT  # --lam 0 races the CLI's recipe
    assert fit_config(DistillOptions(data=Path("d"), out=Path("o"), tau=3.0), epochs=5).tau == 3.0


def test_the_default_temperature_is_two():
    # τ 2 over τ 4, 12 epochs on two photograph sets, two seeds each (docs/benchmarks.md): 5 classes carry
    # little dark knowledge, and τ 4 flattened what there was.
    assert parse("trainer", "distill", "d", "--out", "o").tau == 2.0


def test_the_schedule_is_cosine_unless_one_cycle_is_asked_and_a_head_warmup_needs_the_cosine():
    # Stop 31: one-cycle lifted a ResNet-18 on `trainer synth` at 90 epochs from 87.5 to 96.5 % and measured
    # 0-3 points under the cosine at 12 and 30 epochs, where the defaults run (docs/benchmarks.md).
    assert parse("trainer", "distill", "d", "--out", "o").schedule == "cosine"
    assert parse("trainer", "teacher", "d", "--out", "o", "--schedule", "onecycle").schedule == "onecycle"
    with pytest.raises(BadInputError, match="--head-warmup-epochs 1: needs --schedule cosine"):
        parse("trainer", "distill", "d", "--out", "o", "--head-warmup-epochs", "1", "--schedule", "onecycle")
    assert parse("trainer", "distill", "d", "--out", "o", "--head-warmup-epochs", "1").head_warmup_epochs == 1
