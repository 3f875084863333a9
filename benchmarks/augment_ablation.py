"""Which part of the trainer's augmentation costs accuracy at practical budgets: the trainer's own loop
(`fit`), a ResNet-18 trained from scratch, with the augmentation's parts switched off one at a time.

    python benchmarks/augment_ablation.py data/photo-brick-gravel --epochs 12

Variants: `trainer` (the default up to stop 12: flips, 90° turns, ±10° rotations resampled bilinearly,
brightness/contrast jitter), `no-rotation`, `no-jitter`, `flips-and-turns` (both off: every operation
exact — the default since), `none`. Prints one JSON
line per variant (test accuracy, seconds); run alone: two torch processes on 2 cores slow each other.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from splits import decoded, test_accuracy  # benchmarks/splits.py (scripts run from benchmarks/)

from edge_agent.trainer import tensors
from edge_agent.trainer.fit import FitConfig, fit
from edge_agent.trainer.models import create_model

ORIGINAL = tensors.sample_augment


def without(*columns: int) -> Callable[..., torch.Tensor]:
    """sample_augment with some parameters held at identity: 3 angle, 4 brightness, 5 contrast."""

    def sample(n: int, generator: torch.Generator, square: bool = True, **_: object) -> torch.Tensor:
        # Stop 12's full augmentation (±10° rotations, brightness/contrast jitter), then parts held off.
        params = ORIGINAL(n, generator, square=square, max_degrees=10.0, jitter=True)
        for column in columns:
            params[:, column] = 1.0 if column == 5 else 0.0
        return params

    return sample


VARIANTS = {
    "trainer": (without(), True),  # the trainer's default up to stop 12
    "no-rotation": (without(3), True),
    "no-jitter": (without(4, 5), True),
    "flips-and-turns": (without(3, 4, 5), True),
    "none": (ORIGINAL, False),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    prep = decoded(args.data, args.image_size)
    for name in args.variants:
        sampler, augment = VARIANTS[name]
        tensors.sample_augment = sampler  # `augment` looks it up at call time
        torch.manual_seed(0)
        model = create_model(args.arch, len(prep.splits.classes))
        started = time.perf_counter()
        fit(model, prep.train, prep.val, prep.norm, FitConfig(epochs=args.epochs, augment=augment, progress=False))
        accuracy = test_accuracy(model, prep)
        row = {"data": args.data.name, "arch": args.arch, "epochs": args.epochs, "variant": name}
        print(json.dumps({**row, "test_accuracy": round(accuracy, 4), "seconds": round(time.perf_counter() - started)}))
    tensors.sample_augment = ORIGINAL
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
