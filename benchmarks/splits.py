"""What the trainer-recipe benchmarks share: a data set decoded the trainer's way, and test accuracy."""

from __future__ import annotations

from pathlib import Path

import torch

from edge_agent.trainer.distill import DistillOptions, Prepared, prepare
from edge_agent.trainer.fit import predict_probs


def decoded(data: Path, image_size: int) -> Prepared:
    """The splits as `trainer distill` decodes and normalises them, on the CPU."""
    return prepare(DistillOptions(data=data, out=Path("unused"), image_size=image_size), torch.device("cpu"))


def test_accuracy(model: torch.nn.Module, prep: Prepared) -> float:
    predicted = predict_probs(model, prep.test.images, prep.norm).argmax(1)
    return round(float((predicted == prep.test.labels.numpy()).mean()), 4)
