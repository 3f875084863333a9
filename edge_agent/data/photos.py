"""Defect images from real photographs, with defects drawn by a renderer that is not ours.

Photographs: the texture photographs scikit-image ships in its wheel (brick, gravel, grass; 512×512),
read as PNG files — scikit-image itself is never imported, so its wheel alone is enough. Defects:
`defect-synthesis` (PyPI, Apache-2.0), an independent procedural renderer of scratches, cracks, stains
and pitting. Both come with the `photos` extra (`pip install 'edge-inspection-agent[photos]'`); neither
is a runtime dependency.

Each image is a crop of 128–256 px from a photograph, shrunk to `image_size` with INTER_AREA and turned
or flipped by exact 90° steps (no resampling of the photograph's texture), then given one defect (or
none for `good`). Our own `synth` parts flattered the trainer (high-contrast defects on smooth
surfaces); these are the data the recipe is judged on (docs/benchmarks.md).
"""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_agent.errors import BadInputError

PHOTOGRAPHS = ("brick", "gravel", "grass")
CLASSES = ("good", "scratch", "crack", "stain", "pit")
EXTRA = "pip install 'edge-inspection-agent[photos]'"
MIN_DEFECT_AREA = 4  # pixels: a defect drawn mostly outside the crop is no defect at all
ATTEMPTS = 20


def photographs(names: tuple[str, ...] | list[str]) -> list[np.ndarray]:
    """The named photographs from scikit-image's wheel, as BGR arrays."""
    unknown = sorted(set(names) - set(PHOTOGRAPHS))
    if unknown:
        raise BadInputError(f"--photos {' '.join(unknown)}: not one of {', '.join(PHOTOGRAPHS)}")
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise BadInputError(f"real photographs need scikit-image's wheel: {EXTRA}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    images = [cv2.imread(str(folder / f"{name}.png"), cv2.IMREAD_COLOR) for name in names]
    missing = [name for name, image in zip(names, images, strict=True) if image is None]
    if missing:
        raise BadInputError(f"photographs {', '.join(missing)} not found in {folder} (a partial scikit-image?)")
    return images  # type: ignore[return-value]


def renderers(image_size: int) -> dict[str, Any]:
    """defect-synthesis generators, scaled from the sizes that suit a 128-px part to `image_size`."""
    try:
        import defect_synthesis as ds
    except ImportError as e:
        raise BadInputError(f"real-photograph defects need defect-synthesis: {EXTRA}") from e
    scale = image_size / 128
    return {
        "scratch": ds.ScratchGenerator(length_range=(int(30 * scale), int(90 * scale)), width_range=(1, 2)),
        "crack": ds.CrackGenerator(base_length_range=(int(40 * scale), int(100 * scale)), base_width_range=(1, 2)),
        "stain": ds.StainGenerator(radius_range=(int(8 * scale), int(22 * scale)), opacity_range=(0.35, 0.6)),
        "pit": ds.PittingGenerator(cluster_size_range=(3, 10), pit_radius_range=(1, 3), spread_radius=int(14 * scale)),
    }


def crop(rng: np.random.Generator, photo: np.ndarray, image_size: int) -> np.ndarray:
    side = int(rng.integers(128, 257))
    y = int(rng.integers(0, photo.shape[0] - side + 1))
    x = int(rng.integers(0, photo.shape[1] - side + 1))
    image = cv2.resize(photo[y : y + side, x : x + side], (image_size, image_size), interpolation=cv2.INTER_AREA)
    image = np.rot90(image, int(rng.integers(0, 4)))
    if rng.random() < 0.5:
        image = image[:, ::-1]
    return np.ascontiguousarray(image)


def part(
    rng: np.random.Generator, photos: list[np.ndarray], makers: dict[str, Any], kind: str, size: int
) -> np.ndarray:
    """One image of class `kind`; a defect that will not land on the crop is drawn on a new crop, so that
    no image labelled with a defect goes without one."""
    for _ in range(ATTEMPTS):
        image = crop(rng, photos[int(rng.integers(0, len(photos)))], size)
        if kind == "good":
            return image
        for _ in range(ATTEMPTS):
            result = makers[kind].apply(image)
            if result.defect_area >= MIN_DEFECT_AREA:
                return np.asarray(result.image)
    raise BadInputError(f"no {kind} of {MIN_DEFECT_AREA}+ pixels lands on a {size}-px part: use a larger --image-size")


def write_dataset(
    out: Path,
    photos: tuple[str, ...] | list[str] = ("brick", "gravel"),
    per_class: int = 120,
    image_size: int = 128,
    seed: int = 0,
) -> dict[str, int]:
    """Write layout 2a (train/val/test/<class>/*.png): `per_class` training images per class and a third
    as many for validation and for test; returns images written per split."""
    images = photographs(photos)
    makers = renderers(image_size)
    rng = np.random.default_rng(seed)
    # defect-synthesis draws from the random module and from numpy's global generator (pits, stains):
    # seed both, or the same --seed gives other pits and stains on every run.
    random.seed(seed)
    np.random.seed(seed)  # the renderer's own draws, not ours
    counts: dict[str, int] = {}
    splits = {"train": per_class, "val": max(8, per_class // 3), "test": max(8, per_class // 3)}
    for split, n in splits.items():
        for kind in CLASSES:
            folder = out / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                cv2.imwrite(str(folder / f"{kind}_{i:04d}.png"), part(rng, images, makers, kind, image_size))
                counts[split] = counts.get(split, 0) + 1
    return counts
