"""The training loop's parts: early stopping on a plateau, time to 95 %, the fine-tuning recipe."""

import dataclasses
import logging

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from edge_agent.runtime.manifest import InputSpec  # noqa: E402
from edge_agent.trainer.fit import FitConfig, fit  # noqa: E402
from edge_agent.trainer.hooks import (  # noqa: E402
    EpochEnd,
    FitResult,
    early_stopping,
    epochs_without_progress,
    time_to_fraction,
)
from edge_agent.trainer.recipe import make_optimizer  # noqa: E402
from edge_agent.trainer.tensors import ImageSet, Normalizer  # noqa: E402

SPEC = InputSpec(size=(8, 8), color="RGB", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), resize="stretch")


def rows(*accuracy_loss: tuple[float, float], seconds: float = 2.0) -> list[dict[str, float]]:
    return [
        {"epoch": i + 1, "val_accuracy": acc, "val_loss": loss, "seconds": seconds}
        for i, (acc, loss) in enumerate(accuracy_loss)
    ]


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def tiny_data(n: int = 24) -> ImageSet:
    images = torch.randint(0, 256, (n, 8, 8, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    return ImageSet(images, torch.arange(n) % 3, [], [])


def test_progress_is_a_new_best_accuracy_or_a_clearly_lower_loss():
    assert epochs_without_progress(rows((0.5, 1.0), (0.6, 0.9), (0.6, 0.9), (0.6, 0.9))) == 2
    # Accuracy flat but the loss still falling by more than 1 %: the model is still learning.
    assert epochs_without_progress(rows((0.5, 1.0), (0.5, 0.8), (0.5, 0.6))) == 0
    # A loss that creeps down by less than 1 % a step is a plateau.
    assert epochs_without_progress(rows((0.5, 1.0), (0.5, 0.995), (0.5, 0.991), (0.4, 0.99))) == 3
    assert epochs_without_progress([]) == 0


def test_time_to_95_percent_counts_the_seconds_up_to_that_epoch():
    history = rows((0.5, 1), (0.9, 1), (0.96, 1), (1.0, 1), seconds=3.0)
    assert time_to_fraction(history) == {"epoch": 3, "seconds": 9.0, "of_epochs": 4}
    assert time_to_fraction([]) is None


def test_a_plateau_stops_training_says_why_and_keeps_the_best_weights(caplog):
    data, norm = tiny_data(), Normalizer(SPEC, torch.device("cpu"))
    # lr 0: nothing can change, so validation never progresses after the first epoch.
    cfg = FitConfig(epochs=20, batch_size=8, lr=0.0, progress=False, patience=3, recalibrate_bn=False)
    with caplog.at_level(logging.INFO):
        result = fit(tiny_model(), data, data, norm, cfg, label="flat")
    assert len(result.history) == 4  # epoch 1, then three without progress
    assert result.stopped_early is not None
    assert "no validation progress for 3 epochs (--patience 3)" in result.stopped_early
    assert "flat: early stop after epoch 4" in caplog.text


class Flat(nn.Module):
    """A model whose outputs never change (its layer's output is multiplied by 0): validation never
    progresses, while the optimiser still steps its parameters at the scheduled rate."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.mean((2, 3))) * 0


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_a_plateau_cools_the_rate_down_to_zero_before_stopping(caplog, schedule):
    # A long budget stopped on a plateau halfway would ship weights trained at a high rate; the epochs
    # after the plateau take the rate down to 0 as the end of the schedule would have.
    data, norm = tiny_data(), Normalizer(SPEC, torch.device("cpu"))
    cfg = FitConfig(
        epochs=20, batch_size=8, lr=1e-2, progress=False, patience=3, cooldown=2, recalibrate_bn=False,
        schedule=schedule,
    )  # fmt: skip
    with caplog.at_level(logging.INFO):
        result = fit(Flat(), data, data, norm, cfg, label="flat")
    rates = [row["lr"] for row in result.history]
    assert len(rates) == 6  # epoch 1, three without progress, two cooling down
    assert rates[4] < rates[3]
    assert rates[5] == 0.0
    if schedule == "cosine":  # near its peak the cosine is flat; one-cycle's rate is still rising here
        assert rates[4] == pytest.approx(rates[3] * 0.5, rel=0.05)  # halfway down the 2-epoch ramp
    assert result.stopped_early is not None
    assert "no validation progress for 3 epochs (--patience 3), then 2 epochs cooling" in result.stopped_early
    assert "flat: no validation progress for 3 epochs (--patience 3) after epoch 4" in caplog.text


def test_a_cooldown_longer_than_what_is_left_of_the_budget_ends_with_it():
    data, norm = tiny_data(), Normalizer(SPEC, torch.device("cpu"))
    # (Under one-cycle's steeper end the rate at epoch 4 is already under a tenth of its peak: no cool-down.)
    cfg = FitConfig(
        epochs=5, batch_size=8, lr=1e-2, progress=False, patience=3, cooldown=4, recalibrate_bn=False,
        schedule="cosine",
    )  # fmt: skip
    result = fit(Flat(), data, data, norm, cfg)
    assert [row["lr"] for row in result.history][-1] == 0.0
    assert len(result.history) == 5
    assert result.stopped_early is None  # it ran its whole budget


def test_a_plateau_where_the_schedule_has_already_cooled_the_rate_stops_at_once():
    # Epoch 18 of 20: the cosine is at 3 % of its peak, so the plateau is the model's, not the rate's.
    data, norm = tiny_data(), Normalizer(SPEC, torch.device("cpu"))
    cfg = FitConfig(
        epochs=20, batch_size=8, lr=1e-2, progress=False, patience=17, cooldown=4, recalibrate_bn=False,
        schedule="cosine",
    )  # fmt: skip
    result = fit(Flat(), data, data, norm, cfg)
    assert len(result.history) == 18
    assert 0 < result.history[-1]["lr"] < 0.1 * cfg.lr
    assert result.stopped_early is not None
    assert "cooling" not in result.stopped_early


def plateau_with(train_accuracy: list[float], images: int = 600) -> tuple[FitResult, EpochEnd]:
    """A run whose validation stopped progressing after epoch 1, with these training accuracies."""
    history = [
        {"epoch": i + 1, "val_accuracy": 0.76, "val_loss": 0.6, "train_accuracy": a, "train_images": images}
        for i, a in enumerate(train_accuracy)
    ]
    result = FitResult(model=nn.Linear(1, 1), history=history, best_epoch=1, best_val_accuracy=0.76)
    return result, EpochEnd(len(history), history[-1], np.zeros((1, 2)))


# Stop 30, `trainer synth`, 600 training images: the ResNet-18 teacher's training accuracy, epochs 12-27.
SYNTH_TEACHER = [0.701, 0.677, 0.709, 0.723, 0.738, 0.716, 0.716, 0.726]
SYNTH_TEACHER += [0.748, 0.725, 0.740, 0.779, 0.742, 0.753, 0.711, 0.748]


def test_no_early_stop_while_the_model_still_fits_its_training_images_better():
    # That teacher met a validation plateau at epoch 27 of 90 and stopped at 31 (78.5 %) while it was still
    # learning its training images; the reference's teacher reached 97 % at 90 epochs.
    hook = early_stopping(patience=8, label="teacher", cooldown=0, budget=90)
    result, end = plateau_with(SYNTH_TEACHER)
    assert epochs_without_progress(result.history) >= 8
    assert hook(result, end) is None
    assert result.cooldown is None
    # The same plateau with the training fit flat as well is the end of learning.
    result, end = plateau_with(SYNTH_TEACHER[:8] * 2)
    assert hook(result, end) is not None
    # A rise of 3 points counted on 24 images an epoch is noise.
    result, end = plateau_with(SYNTH_TEACHER, images=24)
    assert hook(result, end) is not None


def test_no_early_stop_while_the_model_fits_under_the_floor_of_its_training_images():
    # The same teacher's training accuracy stalled at 73-80 % for a dozen epochs (36-47) before it rose: a
    # rising-fit rule stopped it at epoch 40 (75.5 % on test); the whole budget gave 87.5 %.
    stalled = [0.735, 0.738, 0.772, 0.787, 0.752, 0.782, 0.789, 0.780] * 2
    result, end = plateau_with(stalled)
    assert early_stopping(patience=8, label="teacher", budget=90, fit_floor=0.9)(result, end) is None
    assert early_stopping(patience=8, label="teacher", budget=90, fit_floor=0.0)(result, end) is not None
    # Over the floor the plateau is the model's.
    result, end = plateau_with([min(1.0, a + 0.2) for a in stalled])
    assert early_stopping(patience=8, label="teacher", budget=90, fit_floor=0.9)(result, end) is not None


def test_the_epochs_a_plateau_was_held_by_the_floor_are_read_back_from_the_history():
    # What the report's advice on a stalling model rests on: the epochs at which early stopping met a
    # plateau and went on only because the model fitted under --fit-floor of its training images.
    from edge_agent.trainer.hooks import held_by_floor

    stalled = [0.735, 0.738, 0.772, 0.787, 0.752, 0.782, 0.789, 0.780] * 2
    result, _ = plateau_with([*stalled, 0.95, 0.96])
    # Validation stopped progressing after epoch 1: a plateau of 8 epochs from epoch 9 on.
    assert held_by_floor(result.history[:16], patience=8, fit_floor=0.9) == list(range(9, 17))
    # Epochs 17-18 fit over the floor, but the floor reads the mean of the last 8, still under it.
    assert held_by_floor(result.history, patience=8, fit_floor=0.9) == list(range(9, 19))
    assert held_by_floor(result.history, patience=8, fit_floor=0.0) == []
    assert held_by_floor(result.history, patience=0, fit_floor=0.9) == []


def test_a_stall_records_the_rate_it_began_at_as_a_share_of_the_peak():
    # The report tells a stall at the cosine's peak (one-cycle may help) from one as the budget runs out.
    from edge_agent.trainer.results import stall

    stalled = [0.735, 0.738, 0.772, 0.787, 0.752, 0.782, 0.789, 0.780] * 2
    result, _ = plateau_with(stalled)
    for row, rate in zip(result.history, [1e-3 * (1 - i / 16) for i in range(16)], strict=True):
        row["lr"] = rate  # falling from 1e-3 over 16 epochs: half of it at epoch 9, the first held
    found = stall(result.history, patience=8, fit_floor=0.9)
    assert found is not None
    assert (found["first_epoch"], found["last_epoch"], found["epochs"]) == (9, 16, 8)
    assert found["rate"] == 0.5
    # A history without rates says nothing of it.
    for row in result.history:
        del row["lr"]
    assert "rate" not in (stall(result.history, patience=8, fit_floor=0.9) or {})


def test_a_cooldown_survives_a_resume(tmp_path, monkeypatch):
    from edge_agent.trainer import fit as fit_module

    data, norm = tiny_data(), Normalizer(SPEC, torch.device("cpu"))
    checkpoint = tmp_path / "flat.ckpt"
    cfg = FitConfig(epochs=20, batch_size=8, lr=1e-2, progress=False, patience=3, cooldown=3, recalibrate_bn=False)
    whole = fit(Flat(), data, data, norm, cfg)
    # The same run interrupted in its second cooling epoch, then resumed from its last checkpoint.
    epoch = fit_module.Loop.epoch

    def interrupted_at_6(loop, number, *args):
        if number == 6:
            raise KeyboardInterrupt
        return epoch(loop, number, *args)

    monkeypatch.setattr(fit_module.Loop, "epoch", interrupted_at_6)
    assert fit(Flat(), data, data, norm, cfg, checkpoint=checkpoint).interrupted
    monkeypatch.setattr(fit_module.Loop, "epoch", epoch)
    resumed = fit(Flat(), data, data, norm, cfg, checkpoint=checkpoint, resume=True)
    assert [row["lr"] for row in resumed.history] == pytest.approx([row["lr"] for row in whole.history])
    assert len(resumed.history) == 7
    assert resumed.stopped_early == whole.stopped_early


def test_one_cycle_rises_from_a_low_rate_over_the_first_third_then_anneals_to_zero():
    # The schedule that took a ResNet-18 on `trainer synth` at 90 epochs from 87.5 to 96.5 % (stop 31).
    data, norm = tiny_data(), Normalizer(SPEC, torch.device("cpu"))
    cfg = FitConfig(epochs=10, batch_size=8, lr=1e-2, progress=False, recalibrate_bn=False, schedule="onecycle")
    rates = [row["lr"] for row in fit(tiny_model(), data, data, norm, cfg).history]
    assert rates[0] < 0.5 * cfg.lr  # the cosine's 5 % warm-up is over by then: 0.99 of the peak
    assert max(rates) == rates[2]  # the peak at 30 % of the budget
    assert max(rates) == pytest.approx(cfg.lr, rel=0.05)
    assert rates[-1] < 0.01 * cfg.lr


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_a_resume_with_a_larger_budget_follows_the_new_budgets_schedule(tmp_path, schedule):
    # `--resume --epochs N` with N raised: a one-cycle scheduler's saved state held the old length and
    # refused the first step past it (ValueError: Tried to step ... times).
    data, norm = tiny_data(), Normalizer(SPEC, torch.device("cpu"))
    checkpoint = tmp_path / "run.ckpt"
    short = FitConfig(epochs=2, batch_size=8, lr=1e-2, progress=False, recalibrate_bn=False, schedule=schedule)
    fit(tiny_model(), data, data, norm, short, checkpoint=checkpoint)
    longer = dataclasses.replace(short, epochs=4)
    resumed = fit(tiny_model(), data, data, norm, longer, checkpoint=checkpoint, resume=True)
    whole = fit(tiny_model(), data, data, norm, longer)
    assert len(resumed.history) == 4
    # From the resume on, the rate is the 4-epoch schedule's at the same step.
    assert [row["lr"] for row in resumed.history[2:]] == pytest.approx([row["lr"] for row in whole.history[2:]])


def test_patience_0_runs_every_epoch():
    data, norm = tiny_data(), Normalizer(SPEC, torch.device("cpu"))
    cfg = FitConfig(epochs=5, batch_size=8, lr=0.0, progress=False, patience=0)
    result = fit(tiny_model(), data, data, norm, cfg)
    assert len(result.history) == 5
    assert result.stopped_early is None


def test_the_fine_tuning_recipe_trains_the_head_alone_first_then_the_backbone_slower():
    model = tiny_model()
    cfg = FitConfig(epochs=3, lr=1e-2, backbone_lr_scale=0.1, head_warmup_epochs=1, schedule="cosine")
    optimizer, schedule = make_optimizer(model, cfg, total_steps=30, steps_per_epoch=10)
    head, backbone = optimizer.param_groups
    assert [p.shape for p in head["params"]] == [torch.Size([3, 4]), torch.Size([3])]
    assert backbone["lr"] == 0.0  # warm-up: the pretrained features wait for a head that makes sense
    assert head["lr"] > 0
    for _ in range(15):
        optimizer.step()
        schedule.step()
    assert 0 < backbone["lr"] <= 0.1 * cfg.lr + 1e-12  # its own warm-up and decay, at a tenth of the peak
    with pytest.raises(ValueError, match="head warm-up needs the cosine"):
        make_optimizer(model, dataclasses.replace(cfg, schedule="onecycle"), total_steps=30, steps_per_epoch=10)


def test_without_fine_tuning_every_parameter_learns_at_the_same_rate():
    optimizer, _ = make_optimizer(tiny_model(), FitConfig(epochs=2, lr=1e-2), total_steps=20, steps_per_epoch=10)
    assert len({group["lr"] for group in optimizer.param_groups}) == 1


def test_the_optimizer_is_adamw_unless_sgd_is_named_and_a_misspelt_name_is_refused():
    # The SGD knob reproduces a benchmark row (docs/benchmarks.md, a teacher that leads): Nesterov, L2 decay.
    def built(name: str) -> torch.optim.Optimizer:
        cfg = FitConfig(epochs=2, lr=0.05, optimizer=name)
        return make_optimizer(tiny_model(), cfg, total_steps=20, steps_per_epoch=10)[0]

    assert isinstance(built("adamw"), torch.optim.AdamW)
    sgd = built("sgd")
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["nesterov"]
    assert sgd.defaults["momentum"] == 0.9
    assert sgd.defaults["weight_decay"] == 5e-4
    with pytest.raises(ValueError, match="adamw or sgd"):
        built("adam")


def test_the_summary_says_how_well_a_model_fit_its_own_training_images():
    # An under-fitted student (brick-gravel: 72 % on training images after 12 epochs) is told apart from an
    # over-fitted one by its last training accuracy, which the report keeps beside the test accuracy.
    from edge_agent.trainer.hooks import FitResult
    from edge_agent.trainer.results import summarize

    model = nn.Sequential(nn.Conv2d(3, 2, 3, stride=2), nn.Flatten())
    rows = [
        {"epoch": e, "train_accuracy": a, "val_accuracy": 0.5, "seconds": 1.0}
        for e, a in enumerate((0.4, 0.7, 0.72), 1)
    ]
    evaluation = {"accuracy": 0.6, "escape_rate": 0.1, "overkill_rate": 0.2, "per_class": {}}
    summary = summarize("conv", model, evaluation, FitResult(model, history=rows, best_epoch=3))
    assert summary.final_train_accuracy == 0.72
    assert summarize("conv", model, evaluation, None).final_train_accuracy is None


@pytest.mark.parametrize(
    ("schedule", "weights"), [("constant", [1, 1, 1, 1]), ("linear", [1, 0.75, 0.5, 0.25]), ("half", [1, 1, 0, 0])]
)
def test_the_distillation_term_is_weighted_by_its_schedule_each_epoch(schedule, weights):
    data, norm = tiny_data(), Normalizer(SPEC, torch.device("cpu"))
    teacher = tiny_model().eval()
    torch.manual_seed(1)
    student = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    cfg = FitConfig(epochs=4, batch_size=8, lam=2.0, kd_schedule=schedule, progress=False, recalibrate_bn=False)
    history = fit(student, data, data, norm, cfg, teacher=teacher).history  # a live teacher (no cached views)
    # An epoch's logged loss is its task loss plus its λ times its (unweighted) distillation term.
    applied = [(row["loss"] - row["task_loss"]) / (2.0 * row["kd_loss"]) if row["kd_loss"] else 0.0 for row in history]
    assert applied == pytest.approx(weights, abs=1e-4)
