"""The training loop shared by teacher, student and baseline: one epoch line each, best-val selection."""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edge_agent.trainer.losses import DistillationLoss, FeatureHintLoss
from edge_agent.trainer.models import feature_channels, feature_module, recalibrate_batchnorm
from edge_agent.trainer.teacher_cache import TeacherViews
from edge_agent.trainer.tensors import ImageSet, Normalizer, apply_augment, augment, distillation_rows, to_unit

log = logging.getLogger(__name__)


@dataclass
class FitConfig:
    epochs: int
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 5e-4
    tau: float = 4.0
    lam: float = 0.0
    hint_weight: float = 0.0
    mixup: float = 0.0  # Beta(α, α) mixing of batch pairs; with a teacher this is "function matching"
    seed: int = 0
    augment: bool = True
    progress: bool = True
    keep_val_probs: int = 0  # keep the validation probabilities of this many last epochs (for --tune)
    unlabeled_ratio: float = 1.0  # teacher-labelled unlabelled images added to a batch, per labelled image


@dataclass
class FitResult:
    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_accuracy: float = 0.0
    interrupted: bool = False
    val_probs: list[np.ndarray] = field(default_factory=list)  # the last `keep_val_probs` epochs'


@torch.no_grad()
def predict_probs(model: nn.Module, images: torch.Tensor, norm: Normalizer, batch_size: int = 128) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        logits = model(norm(images[i : i + batch_size]))
        out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    return np.concatenate(out)


def mixup_pairs(n: int, alpha: float, generator: torch.Generator) -> tuple[float, torch.Tensor | None]:
    """A mixing weight from Beta(α, α) and a partner for every row, or (1, None) when mixup is off."""
    if alpha <= 0 or n < 2:
        return 1.0, None
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    mix = float(np.random.default_rng(seed).beta(alpha, alpha))
    return mix, torch.randperm(n, generator=generator)


def _schedule(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = max(1, total_steps // 20)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def unlabeled_rows(
    first: int, count: int, epoch: int, step: int, steps_per_epoch: int, take: int, seed: int
) -> torch.Tensor:
    """Rows `first .. first + count - 1` (the unlabelled images) for one batch: `take` of them, from a
    stream of fresh permutations that runs across epochs, so every unlabelled image is used before any
    repeats, however many there are. Pure in (epoch, step): a resumed run draws the same rows."""
    if count <= 0 or take <= 0:
        return torch.empty(0, dtype=torch.long)
    start = ((epoch - 1) * steps_per_epoch + step) * take
    rows = []
    while take > 0:
        sweep, offset = divmod(start, count)
        order = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 1_000_003 + sweep))
        chunk = order[offset : offset + take]
        rows.append(chunk)
        start, take = start + len(chunk), take - len(chunk)
    return first + torch.cat(rows)


def bn_batches(train: ImageSet, norm: Normalizer, limit: int = 1024, batch: int = 128) -> list[torch.Tensor]:
    """Clean training images for BatchNorm recalibration, drawn across the whole set in a fixed random
    order: the images are stored class by class, and a batch of one class has the wrong variance (and
    the first `limit` images might be only the first classes)."""
    order = torch.randperm(len(train.images), generator=torch.Generator().manual_seed(0))[:limit]
    images = train.images[order]
    return [norm(images[i : i + batch]) for i in range(0, len(images), batch)]


class _Tap:
    """Forward hook that keeps the last output of a module (for feature hints)."""

    def __init__(self, module: nn.Module) -> None:
        self.value: torch.Tensor | None = None
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, _module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        self.value = output


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
    device = norm.mean.device
    model.to(device)
    use_teacher = teacher is not None and (cfg.lam > 0 or cfg.hint_weight > 0)
    criterion = DistillationLoss(cfg.tau, cfg.lam if use_teacher else 0.0)
    hint: FeatureHintLoss | None = None
    taps: tuple[_Tap, _Tap] | None = None
    if use_teacher and teacher is not None:
        teacher.to(device).eval()
        if cfg.hint_weight > 0:
            size = int(train.images.shape[1])
            hint = FeatureHintLoss(feature_channels(model, size), feature_channels(teacher, size)).to(device)
            taps = (_Tap(feature_module(model)), _Tap(feature_module(teacher)))
    images, labels = distillation_rows(train, unlabeled if use_teacher and cfg.lam > 0 else None)
    cached = teacher_views if use_teacher and cfg.lam > 0 and hint is None and cfg.mixup <= 0 else None
    if cached is not None and len(cached) != len(images):
        raise ValueError(f"teacher_views cover {len(cached)} images, training uses {len(images)}")
    params = list(model.parameters()) + (list(hint.parameters()) if hint else [])
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_labelled = len(train)
    steps_per_epoch = max(1, n_labelled // cfg.batch_size)
    extra_per_step = round(cfg.unlabeled_ratio * cfg.batch_size) if len(images) > n_labelled else 0
    scheduler = _schedule(optimizer, steps_per_epoch * cfg.epochs)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    result = FitResult(model=model)
    best_state = copy.deepcopy(model.state_dict())
    start_epoch = 1
    if resume and checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if hint is not None and state.get("hint"):
            hint.load_state_dict(state["hint"])
        best_state, result.history = state["best_model"], state["history"]
        result.best_epoch, result.best_val_accuracy = state["best_epoch"], state["best_val_accuracy"]
        result.val_probs = state.get("val_probs", [])
        start_epoch = state["epoch"] + 1
        log.info("%s: resumed after epoch %d from %s", label, state["epoch"], checkpoint)
    clean_batches = bn_batches(train, norm)
    try:
        for epoch in range(start_epoch, cfg.epochs + 1):
            generator = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
            order = torch.randperm(n_labelled, generator=generator)
            model.train()
            sums = {"loss": 0.0, "task_loss": 0.0, "kd_loss": 0.0, "hint_loss": 0.0}
            correct = seen = 0
            started = time.perf_counter()
            batches = range(steps_per_epoch)
            if cfg.progress:
                from tqdm import tqdm

                batches = tqdm(batches, desc=f"{label} {epoch}/{cfg.epochs}", leave=False, unit="batch")
            for step in batches:
                index = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
                if extra_per_step:
                    extra = unlabeled_rows(
                        n_labelled, len(images) - n_labelled, epoch, step, steps_per_epoch, extra_per_step, cfg.seed
                    )
                    index = torch.cat([index, extra])
                x01 = to_unit(images[index].to(device))
                cached_logits = None
                if cached is not None:
                    view, cached_logits = cached.pick(index, generator)
                    x01 = apply_augment(x01, view)
                    cached_logits = cached_logits.to(device)
                elif cfg.augment:
                    x01 = augment(x01, generator)
                x, y = norm.unit(x01), labels[index].to(device)
                mix, partner = mixup_pairs(len(index), cfg.mixup, generator)
                if partner is not None:
                    # Teacher and student see the same mixed image: the student matches the teacher's
                    # function between training images, not only at them.
                    x = mix * x + (1 - mix) * x[partner]
                with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                    teacher_logits = cached_logits
                    if teacher_logits is None and use_teacher and teacher is not None:
                        with torch.no_grad():
                            teacher_logits = teacher(x)
                    logits = model(x)
                    parts = criterion(logits, teacher_logits, y)
                    if partner is not None:
                        # The KD term is the same for both labels, so mixing the two losses mixes only CE.
                        other = criterion(logits, teacher_logits, y[partner])
                        parts = {k: mix * parts[k] + (1 - mix) * other[k] for k in parts}
                    loss = parts["loss"]
                    if hint is not None and taps is not None:
                        hint_loss = hint(taps[0].value, taps[1].value)
                        loss = loss + cfg.hint_weight * hint_loss
                        sums["hint_loss"] += float(hint_loss.detach())
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                sums["loss"] += float(loss.detach())
                sums["task_loss"] += float(parts["task_loss"].detach())
                sums["kd_loss"] += float(parts["kd_loss"].detach())
                mask = y >= 0
                correct += int((logits.argmax(1)[mask] == y[mask]).sum())
                seen += int(mask.sum())
            # Exact BatchNorm statistics on clean images: the running averages lag in short runs.
            recalibrate_batchnorm(model, clean_batches)
            probs = predict_probs(model, val.images, norm)
            val_labels = val.labels.numpy()
            val_acc = float((probs.argmax(1) == val_labels).mean())
            val_loss = float(-np.log(probs[np.arange(len(val_labels)), val_labels] + 1e-12).mean())
            row = {k: v / steps_per_epoch for k, v in sums.items()}
            row.update(
                epoch=epoch,
                train_accuracy=correct / max(1, seen),
                val_accuracy=val_acc,
                val_loss=val_loss,
                seconds=time.perf_counter() - started,
                images_per_s=steps_per_epoch * (cfg.batch_size + extra_per_step) / (time.perf_counter() - started),
            )
            result.history.append(row)
            if epoch > cfg.epochs - cfg.keep_val_probs:
                result.val_probs.append(probs)
            if val_acc > result.best_val_accuracy or epoch == 1:
                result.best_epoch, result.best_val_accuracy = epoch, val_acc
                best_state = copy.deepcopy(model.state_dict())
            log.info(
                "%s epoch %d/%d  loss %.3f (task %.3f, kd %.3f)  train acc %.3f  val acc %.3f  %.1fs",
                label,
                epoch,
                cfg.epochs,
                row["loss"],
                row["task_loss"],
                row["kd_loss"],
                row["train_accuracy"],
                val_acc,
                row["seconds"],
            )
            if checkpoint is not None:
                checkpoint.parent.mkdir(parents=True, exist_ok=True)
                torch.save(
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "hint": hint.state_dict() if hint else None,
                        "best_model": best_state,
                        "history": result.history,
                        "epoch": epoch,
                        "best_epoch": result.best_epoch,
                        "best_val_accuracy": result.best_val_accuracy,
                        "val_probs": result.val_probs,
                    },
                    checkpoint,
                )
    except KeyboardInterrupt:
        result.interrupted = True
        log.warning("%s: interrupted; the last finished epoch is saved in %s", label, checkpoint)
    finally:
        if taps:
            for tap in taps:
                tap.handle.remove()
    model.load_state_dict(best_state)
    model.eval()
    return result
