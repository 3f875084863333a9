"""Synthetic surface-defect images: brushed, cast and woven surfaces with scratches, cracks, stains, pits.

Defects come at random strength, so some are subtle; that keeps the task from being trivially solved.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

SURFACES = ("brushed", "cast", "woven")
DEFECTS = ("scratch", "crack", "stain", "pit")
CLASSES = ("good", *DEFECTS)
SPLITS = (("train", 0.6), ("val", 0.2), ("test", 0.2))


def _blurred_noise(rng: np.random.Generator, size: int, kernel: tuple[int, int]) -> np.ndarray:
    noise = cv2.blur(rng.normal(0.0, 1.0, (size, size)).astype(np.float32), kernel)
    return noise / (noise.std() + 1e-6)


def surface(rng: np.random.Generator, size: int) -> np.ndarray:
    """A textured gray surface in 0..1 with uneven lighting and sensor noise."""
    kind = SURFACES[rng.integers(len(SURFACES))]
    if kind == "brushed":
        streak = max(3, size // 4) | 1
        image = 0.55 + 0.07 * _blurred_noise(rng, size, (streak, 1))
        if rng.random() < 0.5:
            image = image.T
    elif kind == "cast":
        fine = max(3, size // 40) | 1
        coarse = max(5, size // 10) | 1
        image = (
            0.45 + 0.05 * _blurred_noise(rng, size, (fine, fine)) + 0.06 * _blurred_noise(rng, size, (coarse, coarse))
        )
    else:
        period = rng.uniform(5.0, 9.0) * size / 128
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        weave = np.sin(2 * np.pi * xx / period) * np.sin(2 * np.pi * yy / period)
        image = 0.5 + 0.08 * weave + 0.03 * _blurred_noise(rng, size, (3, 3))
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * np.linspace(-1, 1, size)[None, :] + np.sin(angle) * np.linspace(-1, 1, size)[:, None]
    image = image + rng.uniform(0.0, 0.12) * ramp + rng.normal(0.0, 0.02, (size, size))
    return image.astype(np.float32)


def _random_point(rng: np.random.Generator, size: int, margin: float = 0.15) -> tuple[int, int]:
    lo, hi = int(size * margin), int(size * (1 - margin))
    return int(rng.integers(lo, hi)), int(rng.integers(lo, hi))


def add_defect(rng: np.random.Generator, image: np.ndarray, tint: np.ndarray, kind: str) -> np.ndarray:
    """Draw one defect of `kind` into a gray image; returns the BGR float image."""
    size = image.shape[0]
    # Below 128 px, defects shrink less than the image: a 2-px pit at 64 px is still a pit.
    scale = max(size / 128, 0.8)
    strength = rng.uniform(0.5, 1.0)
    mask = np.zeros_like(image)
    color = np.ones(3, dtype=np.float32)
    if kind == "scratch":
        x, y = _random_point(rng, size)
        length, angle = rng.uniform(0.3, 0.7) * size, rng.uniform(0, math.pi)
        end = (int(x + length * math.cos(angle)), int(y + length * math.sin(angle)))
        cv2.line(mask, (x, y), end, 1.0, max(1, round(1.5 * scale)), cv2.LINE_AA)
        mask *= 0.3 * strength * (1 if rng.random() < 0.7 else -1)
    elif kind == "crack":
        x, y = _random_point(rng, size)
        heading = rng.uniform(0, 2 * math.pi)
        points = [(x, y)]
        for _ in range(int(rng.integers(6, 12))):
            heading += rng.normal(0, 0.6)
            step = rng.uniform(3, 7) * scale
            x, y = x + step * math.cos(heading), y + step * math.sin(heading)
            points.append((x, y))
        cv2.polylines(mask, [np.array(points, dtype=np.int32)], False, 1.0, max(1, round(1.5 * scale)), cv2.LINE_AA)
        mask *= -0.45 * strength
    elif kind == "stain":
        center = _random_point(rng, size)
        axes = (int(rng.uniform(6, 16) * scale), int(rng.uniform(4, 12) * scale))
        cv2.ellipse(mask, center, axes, rng.uniform(0, 180), 0, 360, 1.0, -1)
        blur = max(3, int(7 * scale)) | 1
        mask = cv2.GaussianBlur(mask, (blur, blur), 0) * -0.2 * strength
        color = np.array([0.7, 0.95, 1.25], dtype=np.float32)  # brownish: less blue, more red (BGR)
    elif kind == "pit":
        center = _random_point(rng, size)
        radius = max(2, int(rng.uniform(2.5, 5.0) * scale))
        cv2.circle(mask, center, radius + 1, 0.5, -1, cv2.LINE_AA)
        cv2.circle(mask, center, radius, -1.0, -1, cv2.LINE_AA)
        mask *= 0.45 * strength
    bgr = image[..., None] * tint[None, None, :]
    return bgr + mask[..., None] * color[None, None, :]


def render(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """One uint8 BGR image of class `kind` ('good' or a defect name)."""
    gray = surface(rng, size)
    tint = rng.uniform(0.9, 1.1, 3).astype(np.float32)
    bgr = gray[..., None] * tint[None, None, :] if kind == "good" else add_defect(rng, gray, tint, kind)
    return np.clip(bgr * 255.0, 0, 255).astype(np.uint8)


def write_dataset(out: Path, per_class: int = 100, image_size: int = 128, seed: int = 0) -> dict[str, int]:
    """Write layout 2a (train/val/test/<class>/*.png); returns images written per split."""
    rng = np.random.default_rng(seed)
    written = {split: 0 for split, _ in SPLITS}
    for kind in CLASSES:
        n_val = max(1, round(per_class * SPLITS[1][1]))
        n_test = max(1, round(per_class * SPLITS[2][1]))
        n_train = max(1, per_class - n_val - n_test)
        for split, count in (("train", n_train), ("val", n_val), ("test", n_test)):
            folder = out / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                cv2.imwrite(str(folder / f"{kind}_{i:05d}.png"), render(rng, image_size, kind))
                written[split] += 1
    return written
