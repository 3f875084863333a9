"""The training loop shared by teacher, student and baseline: a train step, an epoch loop, epoch-end hooks.

`fit` builds a `Loop` (model, optimiser, schedule, loss, where the teacher's outputs come from) and runs
epochs until the budget is spent or a hook says stop (early stopping on a validation plateau is on by
default); it returns the weights of the best validation epoch. Under torchrun the same loop runs data
parallel (see distributed).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edge_agent.trainer import distributed
from edge_agent.trainer.batches import bn_batches, mixup_pairs, unlabeled_rows
from edge_agent.trainer.hooks import (
    Cooldown,
    EpochEnd,
    FitResult,
    Hook,
    early_stopping,
    keep_best,
    keep_val_probs,
    save_checkpoint,
)
from edge_agent.trainer.losses import DistillationLoss, FeatureHintLoss, kd_weight
from edge_agent.trainer.models import feature_channels, feature_module, recalibrate_batchnorm
from edge_agent.trainer.precision import autocast, autocast_dtype
from edge_agent.trainer.recipe import FitConfig, make_optimizer, resume_schedule
from edge_agent.trainer.teacher_cache import TeacherViews
from edge_agent.trainer.teaching import CachedTeacher, LiveTeacher, NoTeacher, Teaching
from edge_agent.trainer.tensors import ImageSet, Normalizer, distillation_rows, to_unit

log = logging.getLogger(__name__)

__all__ = ["FitConfig", "FitResult", "fit", "predict_probs"]


@torch.no_grad()
def predict_probs(model: nn.Module, images: torch.Tensor, norm: Normalizer, batch_size: int = 128) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        logits = model(norm(images[i : i + batch_size]))
        out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    return np.concatenate(out)


class _Tap:
    """Forward hook that keeps the last output of a module (for feature hints)."""

    def __init__(self, module: nn.Module) -> None:
        self.value: torch.Tensor | None = None
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, _module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        self.value = output


def choose_teaching(
    cfg: FitConfig, teacher: nn.Module | None, views: TeacherViews | None, device: torch.device, rows: int
) -> Teaching:
    """Cached views when they apply (plain KD), the live teacher otherwise, or no teacher."""
    if teacher is None or (cfg.lam <= 0 and cfg.hint_weight <= 0):
        return NoTeacher()
    if views is not None and cfg.lam > 0 and cfg.hint_weight <= 0 and cfg.mixup <= 0:
        if len(views) != rows:
            raise ValueError(f"teacher_views cover {len(views)} images, training uses {rows}")
        return CachedTeacher(views, device)
    return LiveTeacher(teacher.to(device))


class Loop:
    """One model's training: the step, the epoch, and what an epoch's end is checked against."""

    def __init__(
        self,
        model: nn.Module,
        train: ImageSet,
        norm: Normalizer,
        cfg: FitConfig,
        teacher: nn.Module | None,
        unlabeled: ImageSet | None,
        views: TeacherViews | None,
        label: str,
    ) -> None:
        self.model, self.norm, self.cfg, self.label = model, norm, cfg, label
        self.device = norm.mean.device
        model.to(self.device)
        distilling = teacher is not None and cfg.lam > 0
        self.images, self.labels = distillation_rows(train, unlabeled if distilling else None)
        self.teaching = choose_teaching(cfg, teacher, views, self.device, len(self.images))
        self.lam_base = cfg.lam if self.teaching.teaches else 0.0
        self.criterion = DistillationLoss(cfg.tau, self.lam_base, cfg.kd_decoupled, cfg.kd_rows)
        self.hint: FeatureHintLoss | None = None
        self.taps: tuple[_Tap, _Tap] | None = None
        if isinstance(self.teaching, LiveTeacher) and teacher is not None and cfg.hint_weight > 0:
            size = int(train.images.shape[1])
            channels = feature_channels(model, size), feature_channels(teacher, size)
            self.hint = FeatureHintLoss(*channels).to(self.device)
            self.taps = (_Tap(feature_module(model)), _Tap(feature_module(teacher)))
        self.stepper = distributed.wrap(model, self.device)
        self.hint_stepper = distributed.wrap(self.hint, self.device) if self.hint is not None else None
        self.labelled = len(train)
        self.steps_per_epoch = max(1, self.labelled // cfg.batch_size)
        self.batch = distributed.local_batch(cfg.batch_size)
        with_unlabeled = len(self.images) > self.labelled
        self.extra_per_step = round(cfg.unlabeled_ratio * cfg.batch_size) if with_unlabeled else 0
        self.optimizer, self.scheduler = make_optimizer(
            model, cfg, self.steps_per_epoch * cfg.epochs, self.steps_per_epoch,
            list(self.hint.parameters()) if self.hint is not None else None,
        )  # fmt: skip
        self.amp_dtype = autocast_dtype(self.device, cfg.precision)
        # float16 needs its gradients scaled to stay above underflow; bfloat16 has float32's range.
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        if self.amp_dtype is not None:
            log.info("%s: training steps in %s autocast (--precision %s)", label, self.amp_dtype, cfg.precision)
        self.clean_batches = bn_batches(train, norm)

    def narrow(self) -> torch.autocast:
        """The step's arithmetic (precision.py): float32 weights, the listed layers in the narrow type."""
        return autocast(self.device, self.amp_dtype)

    def step(self, index: torch.Tensor, generator: torch.Generator) -> list[float]:
        """One optimiser step on the rows `index`: [loss, task, kd, hint, correct, seen] as sums."""
        cfg = self.cfg
        x01, teacher_logits = self.teaching.view(
            to_unit(self.images[index].to(self.device)), index, generator, cfg.augment
        )
        x, y = self.norm.unit(x01), self.labels[index].to(self.device)
        mix, partner = mixup_pairs(len(index), cfg.mixup, generator)
        if partner is not None:
            # Teacher and student see the same mixed image: the student matches the teacher's function
            # between training images, not only at them.
            x = mix * x + (1 - mix) * x[partner]
        with self.narrow():
            if teacher_logits is None:
                teacher_logits = self.teaching.logits(x)
            # The losses in float32: softmax at τ over narrow logits would round the teacher's small odds.
            logits = self.stepper(x).float()
            teacher_logits = teacher_logits.float() if teacher_logits is not None else None
            parts = self.criterion(logits, teacher_logits, y)
            if partner is not None:
                # The KD term is the same for both labels, so mixing the two losses mixes only CE.
                other = self.criterion(logits, teacher_logits, y[partner])
                parts = {k: mix * parts[k] + (1 - mix) * other[k] for k in parts}
            loss, hint_loss = parts["loss"], torch.zeros(())
            if self.hint_stepper is not None and self.taps is not None:
                hint_loss = self.hint_stepper(self.taps[0].value, self.taps[1].value)
                loss = loss + cfg.hint_weight * hint_loss
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        mask = y >= 0
        correct = int((logits.argmax(1)[mask] == y[mask]).sum())
        values = (loss, parts["task_loss"], parts["kd_loss"], hint_loss)
        return [float(v.detach()) for v in values] + [float(correct), float(mask.sum())]

    def epoch(self, epoch: int, val: ImageSet, cooldown: Cooldown | None = None) -> EpochEnd:
        """One pass over the labelled images (this process's shard of it), then validation; during a
        `cooldown` each step's scheduled rate is scaled down towards 0."""
        cfg = self.cfg
        generator = torch.Generator().manual_seed(cfg.seed * 1000 + epoch + 7919 * distributed.rank())
        order = distributed.shard_order(self.labelled, cfg.seed, epoch)
        self.criterion.lam = self.lam_base * kd_weight(cfg.kd_schedule, epoch, cfg.epochs)
        self.model.train()
        sums = [0.0] * 6
        started = time.perf_counter()
        steps: Any = range(self.steps_per_epoch)
        if cfg.progress and distributed.is_main():
            from tqdm import tqdm

            steps = tqdm(steps, desc=f"{self.label} {epoch}/{cfg.epochs}", leave=False, unit="batch")
        extra_local = 0
        for step in steps:
            index = order[step * self.batch : (step + 1) * self.batch]
            if self.extra_per_step:
                unlabeled = len(self.images) - self.labelled
                drawn = unlabeled_rows(
                    self.labelled, unlabeled, epoch, step, self.steps_per_epoch, self.extra_per_step, cfg.seed
                )
                extra = distributed.share(drawn)
                extra_local = len(extra)
                index = torch.cat([index, extra])
            sums = [a + b for a, b in zip(sums, self.step(index, generator), strict=True)]
            if cooldown is not None:
                # The schedulers set each rate afresh from the step count, so this scales only the next step.
                factor = cooldown.factor(epoch, step + 1, self.steps_per_epoch)
                for group in self.optimizer.param_groups:
                    group["lr"] *= factor
        totals = distributed.summed(sums)
        if cfg.recalibrate_bn:
            # Exact BatchNorm statistics on clean images: the running averages lag in short runs. In the
            # step's arithmetic: a ResNet-18's statistics from bfloat16 and from float32 gave the same test
            # accuracy, and these forward passes cost a third of the epoch's steps.
            with self.narrow():
                recalibrate_batchnorm(self.model, self.clean_batches)
        # Validation in float32, as the model ships: it picks the epoch kept (bfloat16 picked another).
        probs = distributed.from_main(predict_probs(self.model, val.images, self.norm))
        val_labels = val.labels.numpy()
        seconds = time.perf_counter() - started
        images = self.steps_per_epoch * (self.batch + extra_local) * distributed.world_size()
        row = {
            "epoch": epoch,
            "loss": totals[0] / (self.steps_per_epoch * distributed.world_size()),
            "task_loss": totals[1] / (self.steps_per_epoch * distributed.world_size()),
            "kd_loss": totals[2] / (self.steps_per_epoch * distributed.world_size()),
            "hint_loss": totals[3] / (self.steps_per_epoch * distributed.world_size()),
            "train_accuracy": totals[4] / max(1.0, totals[5]),
            "train_images": totals[5],  # what train_accuracy was counted on (early stopping weighs its noise)
            "val_accuracy": float((probs.argmax(1) == val_labels).mean()),
            "val_loss": float(-np.log(probs[np.arange(len(val_labels)), val_labels] + 1e-12).mean()),
            "seconds": seconds,
            "images_per_s": images / seconds,
            "lr": float(self.optimizer.param_groups[0]["lr"]),  # the next step's (the head's, when split)
        }
        log.info(
            "%s epoch %d/%d  loss %.3f (task %.3f, kd %.3f)  train acc %.3f  val acc %.3f  lr %.1e  %.1fs",
            self.label, epoch, cfg.epochs, row["loss"], row["task_loss"], row["kd_loss"],
            row["train_accuracy"], row["val_accuracy"], row["lr"], seconds,
        )  # fmt: skip
        return EpochEnd(epoch, row, probs)

    def state(self, result: FitResult) -> dict[str, Any]:
        """Everything --resume needs to continue after the last finished epoch."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "hint": self.hint.state_dict() if self.hint else None,
            "best_model": result.best_state,
            "history": result.history,
            "epoch": result.history[-1]["epoch"] if result.history else 0,
            "best_epoch": result.best_epoch,
            "best_val_accuracy": result.best_val_accuracy,
            "best_val_loss": result.best_val_loss,
            "val_probs": result.val_probs,
            "stopped_early": result.stopped_early,
            "cooldown": dataclasses.asdict(result.cooldown) if result.cooldown else None,
        }

    def restore(self, state: dict[str, Any], result: FitResult) -> int:
        """Load a checkpoint written by `state`; the next epoch to run."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        resume_schedule(self.optimizer, self.scheduler, int(state["scheduler"]["last_epoch"]))
        if self.hint is not None and state.get("hint"):
            self.hint.load_state_dict(state["hint"])
        result.best_state, result.history = state["best_model"], state["history"]
        result.best_epoch, result.best_val_accuracy = state["best_epoch"], state["best_val_accuracy"]
        result.best_val_loss = state.get("best_val_loss", float("inf"))
        result.val_probs, result.stopped_early = state.get("val_probs", []), state.get("stopped_early")
        result.cooldown = Cooldown(**state["cooldown"]) if state.get("cooldown") else None
        return int(state["epoch"]) + 1

    def close(self) -> None:
        for tap in self.taps or ():
            tap.handle.remove()


def fit(
    model: nn.Module,
    train: ImageSet,
    val: ImageSet,
    norm: Normalizer,
    cfg: FitConfig,
    *,
    teacher: nn.Module | None = None,
    unlabeled: ImageSet | None = None,
    teacher_views: TeacherViews | None = None,
    checkpoint: Path | None = None,
    resume: bool = False,
    label: str = "model",
) -> FitResult:
    """Train `model` (optionally distilling from `teacher`); keep the weights of the best val epoch.

    An epoch is one pass over the labelled images. With a teacher and `unlabeled` images, every batch
    also takes `cfg.unlabeled_ratio` × its labelled rows from the unlabelled images (KD term only), so
    an epoch costs the same whether the plant hands over five hundred unlabelled images or fifty thousand.
    `teacher_views` (see teacher_cache) replaces running the teacher on every batch; it must cover the
    training images followed by the unlabelled ones, and is ignored without a teacher."""
    loop = Loop(model, train, norm, cfg, teacher, unlabeled, teacher_views, label)
    result = FitResult(model=model)
    plateau = early_stopping(cfg.patience, label, cfg.cooldown, cfg.epochs, cfg.fit_floor)
    hooks: list[Hook] = [keep_best, keep_val_probs(cfg.keep_val_probs), plateau]
    if checkpoint is not None:
        hooks.append(save_checkpoint(checkpoint, lambda: loop.state(result)))
    first = 1
    if resume and checkpoint is not None and checkpoint.is_file():
        first = loop.restore(torch.load(checkpoint, map_location=loop.device, weights_only=False), result)
        log.info("%s: resumed after epoch %d from %s", label, first - 1, checkpoint)
    try:
        for epoch in range(first, cfg.epochs + 1):
            if result.stopped_early:
                break
            end = loop.epoch(epoch, val, result.cooldown)
            result.history.append(end.row)
            for hook in hooks:
                result.stopped_early = hook(result, end) or result.stopped_early
    except KeyboardInterrupt:
        result.interrupted = True
        log.warning("%s: interrupted; the last finished epoch is saved in %s", label, checkpoint)
    finally:
        loop.close()
    if result.best_state:
        model.load_state_dict(result.best_state)
    model.eval()
    return result
