"""`trainer evaluate`: a bundle's metrics on a data set, through the agent's own inference path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.data.layout import Sample, load_dataset
from edge_agent.errors import BadInputError, DataError
from edge_agent.runtime.inspector import Inspector
from edge_agent.runtime.metrics import classification_report
from edge_agent.runtime.preprocess import normalize_batch, read_image, resize_to_input


def bundle_probabilities(inspector: Inspector, paths: Sequence[Path], batch: int = 32) -> tuple[np.ndarray, list[int]]:
    """Class probabilities for readable images; returns them with the indices of those images."""
    spec = inspector.bundle.manifest.input
    kept, probs = [], []
    for start in range(0, len(paths), batch):
        arrays = []
        for i, path in enumerate(paths[start : start + batch], start=start):
            try:
                arrays.append(resize_to_input(read_image(str(path)), spec))
                kept.append(i)
            except BadInputError:
                continue
        if arrays:
            probs.append(inspector.probabilities(normalize_batch(np.stack(arrays), spec)))
    if not probs:
        raise DataError("none of the images could be read")
    return np.concatenate(probs), kept


def evaluate_bundle(
    model_dir: Path, data: Path, backend: str = "auto", split: str = "test", seed: int = 0, good_class: str = "good"
) -> dict[str, Any]:
    inspector = Inspector.open(str(model_dir), backend)
    manifest = inspector.bundle.manifest
    splits = load_dataset(data, good_class, seed=seed)
    if sorted(splits.classes) != sorted(manifest.classes):
        raise DataError(f"data set {data}: classes {splits.classes} differ from the bundle's {manifest.classes}")
    samples: list[Sample] = getattr(splits, split)
    # The data set's class order may differ from the bundle's; map labels by name.
    labels = np.array([manifest.classes.index(splits.classes[s.label]) for s in samples])
    probs, kept = bundle_probabilities(inspector, [s.path for s in samples])
    # Rows the model could not judge (NaN/inf) are counted apart; metrics over them would be meaningless.
    judged = np.isfinite(probs).all(axis=1)
    kept_labels = labels[kept][judged]
    result = classification_report(
        kept_labels, probs[judged], manifest.classes, manifest.good_index, inspector.threshold
    )
    result.update(
        unjudged=int((~judged).sum()),
        model=str(model_dir),
        backend=inspector.backend.name,
        split=split,
        data=str(data),
        unreadable=len(samples) - len(kept),
    )
    inspector.close()
    return result


def format_evaluation(result: dict[str, Any]) -> str:
    lines = [
        f"{result['model']} on {result['data']} ({result['split']}, {result['n']} images, backend {result['backend']})",
        f"accuracy {result['accuracy']:.1%}   escape {result['escape_rate']:.1%}   "
        f"overkill {result['overkill_rate']:.1%}   threshold {result['threshold']:.4f}",
        f"{'class':<12} {'support':>7} {'precision':>9} {'recall':>7} {'escape':>7}",
    ]
    for name, c in result["per_class"].items():
        escape = c.get("escape_rate")
        lines.append(
            f"{name:<12} {c['support']:>7} {c['precision']:>9.1%} {c['recall']:>7.1%} "
            f"{'' if escape is None else f'{escape:.1%}':>7}"
        )
    if result.get("unjudged"):
        lines.append(f"{result['unjudged']} image(s) not judged: the model's output was not finite")
    if result["unreadable"]:
        lines.append(f"{result['unreadable']} unreadable image(s) skipped")
    return "\n".join(lines)
