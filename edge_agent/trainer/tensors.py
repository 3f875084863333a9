"""Images → in-memory uint8 tensors (decoded by the runtime's own code), normalization, augmentation."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edge_agent.data.layout import Sample
from edge_agent.errors import BadInputError, DataError
from edge_agent.runtime.manifest import InputSpec
from edge_agent.runtime.preprocess import read_image, resize_to_input

log = logging.getLogger(__name__)


@dataclass
class ImageSet:
    """Decoded images of one split: uint8 N×H×W×3 in the network's channel order, labels, paths."""

    images: torch.Tensor
    labels: torch.Tensor
    paths: list[Path]
    skipped: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def load_images(samples: Sequence[Sample], spec: InputSpec, split: str) -> ImageSet:
    """Decode every sample once; unreadable images are skipped and counted, fatal only if all are."""
    arrays, labels, paths, skipped = [], [], [], []
    for sample in samples:
        try:
            arrays.append(resize_to_input(read_image(str(sample.path)), spec))
        except BadInputError as e:
            skipped.append(str(e))
            continue
        labels.append(sample.label)
        paths.append(sample.path)
    if skipped:
        log.warning("%s: skipped %d unreadable image(s), e.g. %s", split, len(skipped), skipped[0])
    if not arrays:
        raise DataError(f"split '{split}': none of its {len(samples)} images could be read")
    return ImageSet(torch.from_numpy(np.stack(arrays)), torch.tensor(labels, dtype=torch.long), paths, skipped)


def load_unlabeled(folder: Path, spec: InputSpec) -> ImageSet:
    from edge_agent.data.layout import IMAGE_SUFFIXES

    # One walk of the tree, one suffix test per file (listing each file's folder again made this quadratic).
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise DataError(f"--unlabeled {folder}: no images found")
    loaded = load_images([Sample(p, -1) for p in images], spec, "unlabeled")
    return loaded


def distillation_rows(train: ImageSet, unlabeled: ImageSet | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The images and targets a distilling student trains on: the labelled images, then the unlabelled
    ones with target -1 (they feed only the KD term). Cached teacher views follow this order."""
    if unlabeled is None:
        return train.images, train.labels
    targets = torch.full((len(unlabeled),), -1, dtype=torch.long)
    return torch.cat([train.images, unlabeled.images]), torch.cat([train.labels, targets])


class Normalizer:
    """uint8 NHWC → float NCHW normalized exactly like runtime.preprocess.normalize_batch."""

    def __init__(self, spec: InputSpec, device: torch.device) -> None:
        self.mean = torch.tensor(spec.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.inv_std = 1.0 / torch.tensor(spec.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    def __call__(self, images_uint8: torch.Tensor) -> torch.Tensor:
        return self.unit(to_unit(images_uint8.to(self.mean.device)))

    def unit(self, batch01: torch.Tensor) -> torch.Tensor:
        """Normalize a float NCHW batch already scaled to 0..1 (e.g. after augmentation)."""
        return (batch01 - self.mean) * self.inv_std


def sample_augment(
    n: int, generator: torch.Generator, square: bool = True, max_degrees: float = 0.0, jitter: bool = False
) -> torch.Tensor:
    """Random augmentation parameters for `n` images, one row of 6 each (see `apply_augment`):
    flip x, flip y, transpose, angle (rad), brightness, contrast.

    By default only the exact operations vary (flips and 90° turns): small rotations resample every image
    bilinearly, which softens one-pixel scratches the line will show sharp, and brightness/contrast jitter
    hides faint stains. On real photographs (benchmarks/augment_ablation.py, 600 images, 128 px, ResNet-18,
    12 epochs) the exact operations gave 93.0 % test accuracy, rotations + jitter 68.5 % (docs/benchmarks.md).
    """
    flips = (torch.rand(n, 3, generator=generator) < 0.5).float()
    if not square:
        flips[:, 2] = 0.0
    # Drawn even when unused, so that a seed gives the same flips whatever the options.
    angles = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(max_degrees)
    brightness = (torch.rand(n, generator=generator) * 2 - 1) * 0.12
    contrast = 0.85 + torch.rand(n, generator=generator) * 0.3
    if not jitter:
        brightness, contrast = torch.zeros(n), torch.ones(n)
    return torch.cat([flips, angles[:, None], brightness[:, None], contrast[:, None]], dim=1)


def apply_augment(batch: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Surface-inspection augmentation on float NCHW in 0..1: flips and 90° turns (and, when their
    parameters are non-zero, small rotations, brightness and contrast). Defects have no preferred
    orientation; their look must not change.

    Parameters are explicit so that a view can be rebuilt exactly, e.g. to reuse the teacher's cached
    output on it."""
    n = batch.shape[0]
    p = params.to(batch.device)

    def where(column: int, changed: torch.Tensor, unchanged: torch.Tensor) -> torch.Tensor:
        return torch.where(p[:, column].view(n, 1, 1, 1) > 0.5, changed, unchanged)

    batch = where(0, batch.flip(3), batch)
    batch = where(1, batch.flip(2), batch)
    if batch.shape[2] == batch.shape[3]:
        batch = where(2, batch.transpose(2, 3), batch)
    if bool((p[:, 3] != 0).any()):  # resample only when some image is actually rotated
        cos, sin, zero = torch.cos(p[:, 3]), torch.sin(p[:, 3]), torch.zeros_like(p[:, 3])
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
        batch = F.grid_sample(batch, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if bool((p[:, 4] != 0).any() or (p[:, 5] != 1).any()):
        mean = batch.mean(dim=(1, 2, 3), keepdim=True)
        batch = ((batch - mean) * p[:, 5].view(n, 1, 1, 1) + mean + p[:, 4].view(n, 1, 1, 1)).clamp(0.0, 1.0)
    return batch


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Augment a float NCHW batch in 0..1 with freshly drawn parameters."""
    return apply_augment(batch, sample_augment(batch.shape[0], generator, square=batch.shape[2] == batch.shape[3]))


def to_unit(images_uint8: torch.Tensor) -> torch.Tensor:
    return images_uint8.permute(0, 3, 1, 2).float() * (1.0 / 255.0)
