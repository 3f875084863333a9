"""Detect a data set's layout (docs/contracts.md §2) and produce stratified train/val/test lists of samples."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.errors import DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


@dataclass
class DatasetSplits:
    root: Path
    layout: str
    classes: list[str]
    good_class: str
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    notes: list[str] = field(default_factory=list)

    @property
    def good_index(self) -> int:
        return self.classes.index(self.good_class)

    def counts(self, split: str) -> dict[str, int]:
        samples: list[Sample] = getattr(self, split)
        return {name: sum(1 for s in samples if s.label == i) for i, name in enumerate(self.classes)}


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def class_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def stratified_split(samples: Iterable[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Split off `fraction` of every class (at least one image where the class has two or more)."""
    by_class: dict[int, list[Sample]] = {}
    for sample in samples:
        by_class.setdefault(sample.label, []).append(sample)
    rng = random.Random(seed)
    kept, held = [], []
    for label in sorted(by_class):
        items = sorted(by_class[label], key=lambda s: s.path)
        rng.shuffle(items)
        n_held = max(1, round(len(items) * fraction)) if len(items) >= 2 else 0
        held.extend(items[:n_held])
        kept.extend(items[n_held:])
    return kept, held


def detect_layout(root: Path) -> str:
    train = root / "train"
    if not root.is_dir():
        raise DataError(f"data set {root}: not a directory")
    if not train.is_dir():
        raise DataError(
            f"data set {root}: unknown layout (expected train/<class>/ images, or MVTec AD train/good/ + test/)"
        )
    train_classes = class_dirs(train)
    test = root / "test"
    if train_classes == ["good"] and test.is_dir() and len(class_dirs(test)) >= 2:
        return "mvtec"
    return "imagefolder"


def _samples(folder: Path, classes: list[str], split: str, root: Path) -> list[Sample]:
    samples: list[Sample] = []
    for index, name in enumerate(classes):
        samples.extend(Sample(p, index) for p in list_images(folder / name))
    if not samples:
        raise DataError(f"data set {root}: split '{split}' has no images")
    return samples


def load_imagefolder(root: Path, good_class: str, holdout: float, seed: int) -> DatasetSplits:
    classes = class_dirs(root / "train")
    if len(classes) < 2:
        raise DataError(f"data set {root}: train/ needs at least two class folders, found {classes}")
    if good_class not in classes:
        raise DataError(f"data set {root}: no '{good_class}' class in train/ (classes: {', '.join(classes)})")
    for name in classes:
        if not list_images(root / "train" / name):
            raise DataError(f"data set {root}: class '{name}' has no images in train/{name}/")
    train = _samples(root / "train", classes, "train", root)
    notes = []
    if (root / "test").is_dir():
        test = _samples(root / "test", classes, "test", root)
    else:
        train, test = stratified_split(train, holdout, seed + 1)
        notes.append(f"no test/ split: held out {len(test)} stratified training images as test")
    if (root / "val").is_dir():
        val = _samples(root / "val", classes, "val", root)
    else:
        train, val = stratified_split(train, holdout, seed)
        notes.append(f"no val/ split: held out {len(val)} stratified training images as validation")
    return DatasetSplits(root, "imagefolder", classes, good_class, train, val, test, notes)


def load_mvtec(root: Path, good_class: str, holdout: float, seed: int) -> DatasetSplits:
    defects = [c for c in class_dirs(root / "test") if c != good_class]
    classes = [good_class, *defects]
    train_good = [Sample(p, 0) for p in list_images(root / "train" / good_class)]
    test_good = [Sample(p, 0) for p in list_images(root / "test" / good_class)]
    if not train_good:
        raise DataError(f"data set {root}: train/{good_class}/ has no images")
    defect_samples = []
    for index, name in enumerate(defects, start=1):
        found = [Sample(p, index) for p in list_images(root / "test" / name)]
        if not found:
            raise DataError(f"data set {root}: class '{name}' has no images in test/{name}/")
        defect_samples.extend(found)
    # Supervised training needs defects in every split: 50 % train, 20 % val, 30 % test per type.
    rest, test_defects = stratified_split(defect_samples, 0.3, seed + 1)
    train_defects, val_defects = stratified_split(rest, 0.2 / 0.7, seed)
    train_good, val_good = stratified_split(train_good, holdout, seed)
    notes = ["MVTec AD layout: defect images of test/ split 50/20/30 into train/val/test"]
    return DatasetSplits(
        root,
        "mvtec",
        classes,
        good_class,
        train_good + train_defects,
        val_good + val_defects,
        test_good + test_defects,
        notes,
    )


def load_dataset(root: str | Path, good_class: str = "good", holdout: float = 0.2, seed: int = 0) -> DatasetSplits:
    """Auto-detect the layout of `root` and return its splits; DataError on anything unusable."""
    path = Path(root).expanduser()
    layout = detect_layout(path)
    if layout == "mvtec":
        splits = load_mvtec(path, good_class, holdout, seed)
    else:
        splits = load_imagefolder(path, good_class, holdout, seed)
    for split in ("train", "val", "test"):
        if not getattr(splits, split):
            raise DataError(f"data set {path}: split '{split}' is empty")
    log.info(
        "data set %s (%s): %d train, %d val, %d test, classes %s",
        path,
        layout,
        len(splits.train),
        len(splits.val),
        len(splits.test),
        splits.classes,
    )
    return splits
