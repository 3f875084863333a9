"""What the trainer-recipe benchmarks share: a data set decoded the trainer's way, and test accuracy."""

from __future__ import annotations

from pathlib import Path

import torch

from edge_agent.trainer.distill import DistillOptions, Prepared, prepare
from edge_agent.trainer.fit import predict_probs


def decoded(data: Path, image_size: int) -> Prepared:
    """The splits as `trainer distill` decodes and normalises them, on the CPU."""
    return prepare(DistillOptions(data=data, out=Path("unused"), image_size=image_size), torch.device("cpu"))


def accuracy(model: torch.nn.Module, prep: Prepared, split: str) -> float:
    """Accuracy on a split's clean (unaugmented) images: `test`, or `train` to see how well a model fits."""
    images = getattr(prep, split)
    predicted = predict_probs(model, images.images, prep.norm).argmax(1)
    return round(float((predicted == images.labels.numpy()).mean()), 4)


def test_accuracy(model: torch.nn.Module, prep: Prepared) -> float:
    return accuracy(model, prep, "test")
