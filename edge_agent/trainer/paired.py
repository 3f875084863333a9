"""Two models compared image by image on the same split, a difference counting only beyond its sampling error.

Inspection validation sets are small (a few dozen good parts): a raw difference of one or two images is a
coin flip, and the trainer's choices (`--tune`, `--ship best`) must not follow coin flips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_IMAGES = 3.0  # the smallest paired difference, in images, that counts (see Gap)


@dataclass(frozen=True)
class Gap:
    """A paired difference between two models on the same images: `diff` in share of images, and the
    smallest difference that counts (one standard error of a paired difference — the square root of
    the images they disagree on — and never under three images: two images going one way happen by
    chance every other time, and a teacher trained on shuffled labels won --tune that way)."""

    diff: float
    margin: float

    @classmethod
    def of(cls, a: np.ndarray, b: np.ndarray, errors: float = 1.0) -> Gap:
        """`errors`: how many sampling errors the difference must reach to count."""
        n = max(1, len(a))
        margin = errors * max(math.sqrt(int((a != b).sum())), MIN_IMAGES) / n
        return cls(float(a.mean() - b.mean()) if len(a) else 0.0, margin)

    @property
    def clearly_up(self) -> bool:
        return self.diff >= self.margin - 1e-9

    @property
    def clearly_down(self) -> bool:
        return self.diff <= -self.margin + 1e-9
