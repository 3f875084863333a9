"""`trainer export`: a model checkpoint → a bundle, calibrating the threshold when data is given."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from edge_agent.data.layout import load_dataset
from edge_agent.errors import BadInputError
from edge_agent.runtime.manifest import InputSpec, Manifest
from edge_agent.runtime.metrics import calibrate_threshold
from edge_agent.trainer.checkpoint import load_model
from edge_agent.trainer.export import write_bundle
from edge_agent.trainer.fit import predict_probs
from edge_agent.trainer.tensors import Normalizer, load_images

log = logging.getLogger(__name__)


def export_checkpoint(
    checkpoint: Path,
    out: Path,
    *,
    data: Path | None = None,
    threshold: float | None = None,
    int8: bool = False,
    calib: Path | None = None,
    seed: int = 0,
    max_escape: float = 0.01,
) -> Manifest:
    model, state = load_model(checkpoint)
    spec = InputSpec.model_validate(state["input"])
    classes, good_class = state["classes"], state["good_class"]
    norm = Normalizer(spec, torch.device("cpu"))
    if int8 and calib is None:
        raise BadInputError("--int8 needs --calib DATA (training images to calibrate on, test split to check)")
    parity = torch.randn(4, 3, *spec.size)
    metrics: dict[str, object] = {}
    if data is not None:
        splits = load_dataset(data, good_class, seed=seed)
        if splits.classes != classes:
            raise BadInputError(f"--data {data}: classes {splits.classes} differ from the checkpoint's {classes}")
        val = load_images(splits.val, spec, "val")
        probs = predict_probs(model, val.images, norm)
        if threshold is None:
            good = classes.index(good_class)
            threshold = calibrate_threshold(val.labels.numpy() != good, 1.0 - probs[:, good], max_escape).threshold
        parity = norm(val.images[:16])
    if threshold is None:
        log.warning("no --data and no --threshold: threshold set to 0.5")
        threshold = 0.5
    manifest = write_bundle(
        out,
        model,
        arch=state["arch"],
        classes=classes,
        good_class=good_class,
        spec=spec,
        threshold=threshold,
        parity_batch=parity,
        metrics=metrics,
        teacher=None,
        trainer={"source_checkpoint": str(checkpoint), "seed": seed},
    )
    if int8 and calib is not None:
        from edge_agent.runtime.bundle import read_manifest
        from edge_agent.runtime.tools.quantize import quantize_bundle

        splits = load_dataset(calib, good_class, seed=seed)
        quantize_bundle(out, splits, [s.path for s in splits.test])
        manifest = read_manifest(out)
    return manifest
