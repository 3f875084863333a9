"""`trainer distill`: teacher → student (+ baseline) → evaluation → threshold → bundle and report."""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edge_agent.data.layout import DatasetSplits, load_dataset
from edge_agent.errors import BadInputError
from edge_agent.runtime.manifest import InputSpec
from edge_agent.runtime.metrics import calibrate_threshold, classification_report
from edge_agent.trainer import distributed
from edge_agent.trainer.checkpoint import load_model, save_model
from edge_agent.trainer.fit import FitConfig, FitResult, fit, predict_probs
from edge_agent.trainer.models import IMAGENET_MEAN, IMAGENET_STD, create_model
from edge_agent.trainer.precision import arithmetic_name
from edge_agent.trainer.report import equal_overkill, gate, teacher_lead, write_report
from edge_agent.trainer.report_pictures import mistakes
from edge_agent.trainer.results import summarize
from edge_agent.trainer.shipping import Judged, choose_shipped
from edge_agent.trainer.teacher_cache import TeacherViews, compute_teacher_views
from edge_agent.trainer.tensors import ImageSet, Normalizer, distillation_rows, load_images, load_unlabeled
from edge_agent.trainer_options import DistillOptions

log = logging.getLogger(__name__)

__all__ = ["DistillOptions", "run_distill"]  # DistillOptions is declared (once) in edge_agent.trainer_options


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise BadInputError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise BadInputError(f"--device {name!r}: choose cpu, cuda or auto")
    return torch.device(name)


def input_spec(image_size: int) -> InputSpec:
    return InputSpec(size=(image_size, image_size), color="RGB", mean=IMAGENET_MEAN, std=IMAGENET_STD, resize="stretch")


@dataclass
class Prepared:
    splits: DatasetSplits
    spec: InputSpec
    train: ImageSet
    val: ImageSet
    test: ImageSet
    norm: Normalizer


def prepare(opts: DistillOptions, device: torch.device) -> Prepared:
    # Threads per process: all the cores alone, a share of them under torchrun (distributed.threads).
    torch.set_num_threads(distributed.threads())
    splits = load_dataset(opts.data, opts.good_class, seed=opts.seed)
    spec = input_spec(opts.image_size)
    sets = {s: load_images(getattr(splits, s), spec, s) for s in ("train", "val", "test")}
    return Prepared(splits, spec, sets["train"], sets["val"], sets["test"], Normalizer(spec, device))


def evaluate_model(model: nn.Module, images: ImageSet, prep: Prepared, threshold: float) -> dict[str, Any]:
    """classification_report, plus the per-image defect scores (kept in memory for the trade-off picture
    and the equal-overkill comparison; not written to report.json)."""
    probs = predict_probs(model, images.images, prep.norm)
    labels = images.labels.numpy()
    ev = classification_report(labels, probs, prep.splits.classes, prep.splits.good_index, threshold)
    ev["defect_scores"] = 1.0 - probs[:, prep.splits.good_index]
    ev["is_defect"] = labels != prep.splits.good_index
    ev["labels"] = labels
    return ev


def fit_config(opts: DistillOptions, epochs: int) -> FitConfig:
    """What teacher and students share of the recipe."""
    return FitConfig(
        epochs=epochs,
        batch_size=opts.batch_size,
        lr=opts.lr,
        weight_decay=opts.weight_decay,
        schedule=opts.schedule,
        tau=opts.tau,
        seed=opts.seed,
        progress=opts.progress,
        patience=opts.patience,
        cooldown=opts.cooldown,
        fit_floor=opts.fit_floor,
        precision=opts.precision,
    )


def train_teacher(opts: DistillOptions, prep: Prepared, work: Path) -> tuple[nn.Module, str, FitResult | None]:
    if opts.teacher is not None:
        model, state = load_model(opts.teacher)
        if state["classes"] != prep.splits.classes:
            raise BadInputError(
                f"--teacher {opts.teacher}: trained on classes {state['classes']}, the data has {prep.splits.classes}"
            )
        log.info("teacher %s loaded from %s", state["arch"], opts.teacher)
        return model.to(prep.norm.mean.device), state["arch"], None
    final = work / "teacher.pt"
    if opts.resume and final.is_file():
        model, state = load_model(final)
        log.info("teacher reused from %s (--resume)", final)
        return model.to(prep.norm.mean.device), state["arch"], None
    torch.manual_seed(opts.seed)
    model = create_model(
        opts.teacher_arch, len(prep.splits.classes), pretrained=opts.pretrained, stem_stride=opts.teacher_stem_stride
    )
    cfg = fit_config(opts, opts.teacher_epochs)
    if opts.pretrained:
        # Fine-tuning knobs (a head-only warm-up, a slower backbone). Their defaults leave the backbone at
        # the full rate: surface defects are far from ImageNet and the features must move; the classic
        # head-first, 0.1x-backbone recipe scored 13 points lower (benchmarks/pretrained.py).
        cfg.backbone_lr_scale, cfg.head_warmup_epochs = opts.backbone_lr_scale, opts.head_warmup_epochs
    result = fit(
        model,
        prep.train,
        prep.val,
        prep.norm,
        cfg,
        checkpoint=work / "teacher-last.pt",
        resume=opts.resume,
        label="teacher",
    )
    if result.interrupted:
        raise KeyboardInterrupt
    if distributed.is_main():
        classes, good = prep.splits.classes, prep.splits.good_class
        save_model(final, model, opts.teacher_arch, classes, good, prep.spec, history=result.history)
    return model, opts.teacher_arch, result


def train_student(
    opts: DistillOptions,
    prep: Prepared,
    work: Path,
    teacher: nn.Module | None,
    tau: float,
    lam: float,
    label: str,
    epochs: int | None = None,
    unlabeled: ImageSet | None = None,
    teacher_views: TeacherViews | None = None,
    keep_val_probs: int = 0,
) -> tuple[nn.Module, FitResult]:
    torch.manual_seed(opts.seed + 1)
    # A stride-1 stem: at 12 epochs on 128 px photographs MobileNetV3-Small scored 87.5 % with it and 74.5 %
    # with torchvision's stride 2, its teacher 89.0 % (docs/benchmarks.md); small defects need the pixels.
    # Residual branches start at zero: a 12-epoch student otherwise stalls in some seeds (zero_init_residual).
    model = create_model(
        opts.student_arch, len(prep.splits.classes), stem_stride=opts.student_stem_stride, zero_residual=True
    )
    cfg = fit_config(opts, epochs or opts.epochs)
    cfg.tau, cfg.lam, cfg.mixup, cfg.unlabeled_ratio = tau, lam, opts.mixup, opts.unlabeled_ratio
    if teacher is not None and lam > 0:
        # A knob, 1 by default: twice the rate helped students that under-fitted (stop 18) and stalled one
        # that starts with its residual branches at zero (docs/benchmarks.md, the side-by-side).
        cfg.lr = opts.lr * opts.kd_lr_scale
    cfg.hint_weight = opts.hint_weight if (opts.feature_kd and teacher is not None) else 0.0
    cfg.keep_val_probs = keep_val_probs
    result = fit(
        model,
        prep.train,
        prep.val,
        prep.norm,
        cfg,
        teacher=teacher,
        unlabeled=unlabeled,
        teacher_views=teacher_views,
        checkpoint=work / f"{label}-last.pt",
        resume=opts.resume,
        label=label,
    )
    if result.interrupted:
        raise KeyboardInterrupt
    return model, result


def teacher_labelled(opts: DistillOptions, prep: Prepared, teacher: nn.Module) -> ImageSet | None:
    """Unlabelled images the teacher is confident enough about, for the distillation term only."""
    if opts.unlabeled is None:
        return None
    images = load_unlabeled(opts.unlabeled, prep.spec)
    probs = predict_probs(teacher, images.images, prep.norm)
    keep = torch.from_numpy(probs.max(axis=1) >= opts.unlabeled_min_confidence)
    log.info(
        "unlabeled: %d of %d images kept (teacher confidence >= %.2f)",
        int(keep.sum()),
        len(images),
        opts.unlabeled_min_confidence,
    )
    return ImageSet(images.images[keep], images.labels[keep], images.paths, images.skipped)


def cache_teacher(
    opts: DistillOptions, prep: Prepared, teacher: nn.Module, unlabeled: ImageSet | None
) -> TeacherViews | None:
    """The teacher's outputs on `--teacher-views` augmented views of every image, or None (run it per batch)."""
    if opts.teacher_views <= 0:
        return None
    if opts.mixup > 0 or opts.feature_kd:
        log.info("teacher outputs not cached: --mixup and --feature-kd need the teacher on every batch")
        return None
    images, _ = distillation_rows(prep.train, unlabeled)
    return compute_teacher_views(teacher, images, prep.norm, opts.teacher_views, opts.seed, precision=opts.precision)


def run_distill(opts: DistillOptions) -> dict[str, Any] | None:
    """The whole workstation job; returns report.json's content (None on torchrun's other processes,
    which train beside rank 0 and write nothing)."""
    device = distributed.start(pick_device(opts.device))
    try:
        return distill_on(opts, device)
    finally:
        distributed.stop()


def run_teacher(opts: DistillOptions) -> tuple[str, float, Path] | None:
    """`trainer teacher`: the teacher alone, into OUT/teacher.pt; (arch, test accuracy, checkpoint), or
    None on torchrun's other processes."""
    device = distributed.start(pick_device(opts.device))
    try:
        work = opts.work_dir or opts.out
        prep = prepare(opts, device)
        model, arch, _ = train_teacher(opts, prep, work)
        if not distributed.is_main():
            return None
        opts.out.mkdir(parents=True, exist_ok=True)
        if work != opts.out:
            shutil.copy2(work / "teacher.pt", opts.out / "teacher.pt")
        return arch, evaluate_model(model, prep.test, prep, 0.5)["accuracy"], opts.out / "teacher.pt"
    finally:
        distributed.stop()


def distill_on(opts: DistillOptions, device: torch.device) -> dict[str, Any] | None:
    work = opts.work_dir or opts.out.parent / f"{opts.out.name}.run"
    work.mkdir(parents=True, exist_ok=True)
    prep = prepare(opts, device)
    teacher, teacher_arch, teacher_fit = train_teacher(opts, prep, work)
    unlabeled = teacher_labelled(opts, prep, teacher)
    views = cache_teacher(opts, prep, teacher, unlabeled)
    tau, lam, tuning, alone = opts.tau, opts.lam, None, None
    if opts.tune:
        from edge_agent.trainer.tune import tune_tau_lambda

        def candidate(tau_: float, lam_: float, label: str, epochs: int, keep: int) -> tuple[nn.Module, FitResult]:
            return train_student(
                opts, prep, work, teacher if lam_ > 0 else None, tau_, lam_, label,
                epochs=epochs, unlabeled=unlabeled, teacher_views=views, keep_val_probs=keep,
            )  # fmt: skip

        tuned = tune_tau_lambda(candidate, opts, prep, teacher)
        tuning, (student, student_fit), alone = tuned.report, tuned.winner, tuned.reference
        tau, lam = tuning["winner"]["tau"], tuning["winner"]["lam"]
    else:
        student, student_fit = train_student(
            opts, prep, work, teacher, tau, lam, "student", unlabeled=unlabeled, teacher_views=views
        )
    models: dict[str, tuple[nn.Module, str, FitResult | None]] = {
        "teacher": (teacher, teacher_arch, teacher_fit),
        "student": (student, opts.student_arch, student_fit),
    }
    if opts.baseline or alone is not None:
        # --tune already trained the student alone for the full budget: that is the baseline, shown beside
        # the shipped student on the test split whether or not --baseline was asked for.
        baseline, baseline_fit = alone or train_student(opts, prep, work, None, tau, 0.0, "baseline")
        models["baseline"] = (baseline, opts.student_arch, baseline_fit)
    if not distributed.is_main():
        return None
    return finish(opts, prep, models, tau, lam, tuning, len(unlabeled) if unlabeled is not None else 0)


def finish(
    opts: DistillOptions,
    prep: Prepared,
    models: dict[str, tuple[nn.Module, str, FitResult | None]],
    tau: float,
    lam: float,
    tuning: dict[str, Any] | None,
    unlabeled_count: int = 0,
) -> dict[str, Any]:
    """Calibrate, evaluate, choose what ships, export the bundle and write the report."""
    from edge_agent.trainer.export import arch_info, write_bundle

    good = prep.splits.good_index
    val_labels = prep.val.labels.numpy()
    val_is_defect = val_labels != good
    calibrations, judged = {}, {}
    for name, (model, _, _) in models.items():
        val_probs = predict_probs(model, prep.val.images, prep.norm)
        scores = 1.0 - val_probs[:, good]
        calibrations[name] = calibrate_threshold(val_is_defect, scores, opts.max_escape)
        correct = val_probs.argmax(axis=1) == val_labels
        judged[name] = Judged.of(correct, ~val_is_defect, scores, calibrations[name])
    evaluations = {
        name: evaluate_model(model, prep.test, prep, calibrations[name].threshold)
        for name, (model, _, _) in models.items()
    }
    if tuning:
        # The tuner already compared the distilled finalist with the student alone (the baseline) at the
        # full budget, escape first; its decision and its reasons are what ships.
        shipped, verdict = "student", f"Chosen by --tune on validation: {tuning['why']}"
    else:
        shipped, verdict = choose_shipped(opts.ship, judged["student"], judged.get("baseline"))
        if shipped == "student" and lam == 0:
            verdict = "The shipped student was trained without the teacher (λ = 0)."
    model, arch, _ = models[shipped]
    calibration = calibrations[shipped]
    report: dict[str, Any] = {
        "name": opts.name or opts.out.name,
        "tau": tau,
        "lam": lam,
        "hint_weight": opts.hint_weight if opts.feature_kd else 0.0,
        "threshold": calibration.threshold,
        "calibration": calibration.to_dict(),
        "good_class": prep.splits.good_class,
        "shipped": shipped,
        "verdict": verdict,
        "seed": opts.seed,
        "image_size": opts.image_size,
        "schedule": opts.schedule,
        "arithmetic": arithmetic_name(prep.norm.mean.device, opts.precision),
        "data": {
            "root": prep.splits.root.name,  # paths in the report are relative to it: no workstation paths
            "layout": prep.splits.layout,
            "classes": prep.splits.classes,
            "counts": {
                **{s: len(getattr(prep, s)) for s in ("train", "val", "test")},
                **({"unlabeled": unlabeled_count} if unlabeled_count else {}),  # teacher-labelled, KD term only
            },
            "skipped_unreadable": sum(len(getattr(prep, s).skipped) for s in ("train", "val", "test")),
            "notes": prep.splits.notes,
        },
    }
    for name, (m, a, result) in models.items():
        report[name] = summarize(a, m, evaluations[name], result, opts.patience, opts.fit_floor).to_dict()
        report[name]["threshold"] = calibrations[name].threshold
        report[name]["validation"] = {"accuracy": judged[name].accuracy, **calibrations[name].to_dict()}
    if tuning:
        report["tuning"] = tuning
    report["mistakes"] = mistakes(evaluations[shipped], prep.test.paths, prep.splits.root, calibration.threshold)
    report["calibration_met"] = calibration.target_met
    report["teacher_lead"] = teacher_lead(report)
    report["equal_overkill"] = equal_overkill(evaluations)
    teacher_model, teacher_arch, _ = models["teacher"]
    parity = prep.norm(prep.val.images[:16]).cpu()
    manifest = write_bundle(
        opts.out,
        model.cpu(),
        arch=arch,
        classes=prep.splits.classes,
        good_class=prep.splits.good_class,
        spec=prep.spec,
        threshold=calibration.threshold,
        parity_batch=parity,
        metrics={
            "test_accuracy": evaluations[shipped]["accuracy"],
            "escape_rate": evaluations[shipped]["escape_rate"],
            "overkill_rate": evaluations[shipped]["overkill_rate"],
            "shipped": shipped,
        },
        teacher=arch_info(teacher_arch, teacher_model),
        trainer={
            "seed": opts.seed,
            "tau": tau,
            "lam": lam,
            "epochs": opts.epochs,
            # Folders by name: the bundle goes to the line, the workstation's layout stays behind.
            "options": {k: v.name if isinstance(v, Path) else v for k, v in asdict(opts).items()},
        },
        name=opts.name,
    )
    report["bundle"] = {
        "path": opts.out.name,  # the report lies in the bundle: its folder's name, not the workstation's path
        "version": manifest.version,
        "onnx_parity_max_abs": manifest.trainer["onnx_parity_max_abs"],
    }
    if opts.int8:
        from edge_agent.runtime.tools.quantize import quantize_bundle

        report["int8"] = quantize_bundle(opts.out, prep.splits, prep.test.paths)
    histories = {n: r.history for n, (_, _, r) in models.items() if r is not None}
    report["gate"] = gate(report, opts.max_escape, opts.gates)
    write_report(opts.out, report, evaluations, histories, prep.splits.root)
    return report
