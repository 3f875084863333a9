"""Development data from real photographs with defects from a renderer that is not ours.

Photographs: the texture photographs scikit-image ships in its wheel (brick, gravel, grass; 512×512,
read as files — scikit-image itself is not imported). Defects: `defect-synthesis` (PyPI, Apache-2.0),
an independent procedural renderer of scratches, cracks, stains and pitting. Both are benchmark-only:

    pip install --no-deps scikit-image defect-synthesis   # into the dev venv; never a runtime dependency
    python benchmarks/photo_data.py data/photo-brick-gravel --photos brick gravel
    python benchmarks/photo_data.py data/photo-grass --photos grass

Each image is a crop of 128–256 px from a photograph, shrunk to `--size` with INTER_AREA and turned or
flipped by exact 90° steps (no resampling of the photograph's texture), then given one defect (or none
for `good`). Layout: ImageFolder train/val/test, `--per-class` training images per class.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("good", "scratch", "crack", "stain", "pit")


def photographs(names: list[str]) -> list[np.ndarray]:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("needs the scikit-image wheel for its photographs: pip install --no-deps scikit-image")
    folder = Path(spec.submodule_search_locations[0]) / "data"
    images = [cv2.imread(str(folder / f"{name}.png"), cv2.IMREAD_COLOR) for name in names]
    if any(image is None for image in images):
        raise SystemExit(f"photographs {names} not all found in {folder}")
    return images  # type: ignore[return-value]


def renderers(size: int) -> dict[str, object]:
    """Defect generators scaled from their 512-px defaults to `size`-px parts."""
    import defect_synthesis as ds

    scale = size / 128
    return {
        "scratch": ds.ScratchGenerator(length_range=(int(30 * scale), int(90 * scale)), width_range=(1, 2)),
        "crack": ds.CrackGenerator(base_length_range=(int(40 * scale), int(100 * scale)), base_width_range=(1, 2)),
        "stain": ds.StainGenerator(radius_range=(int(8 * scale), int(22 * scale)), opacity_range=(0.35, 0.6)),
        "pit": ds.PittingGenerator(
            cluster_size_range=(3, 10), pit_radius_range=(1, 3), spread_radius=int(14 * scale)
        ),
    }


def crop(rng: np.random.Generator, photo: np.ndarray, size: int) -> np.ndarray:
    side = int(rng.integers(128, 257))
    y = int(rng.integers(0, photo.shape[0] - side + 1))
    x = int(rng.integers(0, photo.shape[1] - side + 1))
    image = cv2.resize(photo[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA)
    image = np.rot90(image, int(rng.integers(0, 4)))
    if rng.random() < 0.5:
        image = image[:, ::-1]
    return np.ascontiguousarray(image)


def write(out: Path, names: list[str], per_class: int, size: int, seed: int) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    random.seed(seed)  # defect-synthesis draws from the random module
    photos = photographs(names)
    makers = renderers(size)
    counts: dict[str, int] = {}
    splits = {"train": per_class, "val": max(8, per_class // 3), "test": max(8, per_class // 3)}
    for split, n in splits.items():
        for kind in CLASSES:
            folder = out / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image = crop(rng, photos[int(rng.integers(0, len(photos)))], size)
                if kind != "good":
                    for _ in range(20):  # a defect may land outside the part; draw again
                        result = makers[kind].apply(image)  # type: ignore[attr-defined]
                        if result.defect_area >= 4:
                            image = result.image
                            break
                cv2.imwrite(str(folder / f"{kind}_{i:04d}.png"), image)
                counts[split] = counts.get(split, 0) + 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--photos", nargs="+", default=["brick", "gravel"], help="scikit-image texture photographs")
    parser.add_argument("--per-class", type=int, default=120, help="training images per class (120: 600 in all)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    counts = write(args.out, args.photos, args.per_class, args.size, args.seed)
    print(f"wrote {args.out}: {counts} ({', '.join(CLASSES)}; photographs {', '.join(args.photos)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
