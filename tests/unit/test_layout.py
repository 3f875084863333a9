from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.data.layout import Sample, load_dataset, stratified_split
from edge_agent.errors import DataError


def image(path: Path, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((16, 16, 3), value, np.uint8))


def make_imagefolder(root: Path, classes=("good", "scratch"), per_class=10, splits=("train",)) -> Path:
    for split in splits:
        for name in classes:
            for i in range(per_class):
                image(root / split / name / f"{i}.png", 10 * i)
    return root


def test_imagefolder_without_val_or_test_holds_out_stratified(tmp_path):
    splits = load_dataset(make_imagefolder(tmp_path), seed=3)
    assert splits.layout == "imagefolder"
    assert splits.classes == ["good", "scratch"]
    for split in ("val", "test"):
        counts = splits.counts(split)
        assert counts["good"] >= 1
        assert counts["scratch"] >= 1
    paths = [s.path for s in splits.train + splits.val + splits.test]
    assert len(paths) == len(set(paths)) == 20
    assert any("no val/ split" in n for n in splits.notes)


def test_imagefolder_with_all_splits_uses_them(tmp_path):
    splits = load_dataset(make_imagefolder(tmp_path, splits=("train", "val", "test"), per_class=3))
    assert len(splits.train) == len(splits.val) == len(splits.test) == 6
    assert splits.notes == []


def test_mvtec_layout_is_detected_and_defects_split_three_ways(tmp_path):
    for i in range(10):
        image(tmp_path / "train" / "good" / f"{i}.png")
        image(tmp_path / "test" / "good" / f"{i}.png")
        image(tmp_path / "test" / "crack" / f"{i}.png")
        image(tmp_path / "test" / "hole" / f"{i}.png")
    (tmp_path / "ground_truth").mkdir()
    splits = load_dataset(tmp_path)
    assert splits.layout == "mvtec"
    assert splits.classes == ["good", "crack", "hole"]
    for split in ("train", "val", "test"):
        counts = splits.counts(split)
        assert counts["crack"] >= 1, split
        assert counts["hole"] >= 1, split


def test_unknown_layout(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="unknown layout"):
        load_dataset(tmp_path)


def test_missing_good_class(tmp_path):
    with pytest.raises(DataError, match="no 'good' class"):
        load_dataset(make_imagefolder(tmp_path, classes=("ok", "scratch")))


def test_good_class_option(tmp_path):
    splits = load_dataset(make_imagefolder(tmp_path, classes=("ok", "scratch")), good_class="ok")
    assert splits.good_class == "ok"


def test_class_without_images(tmp_path):
    make_imagefolder(tmp_path)
    (tmp_path / "train" / "crack").mkdir()
    with pytest.raises(DataError, match="class 'crack' has no images"):
        load_dataset(tmp_path)


def test_empty_split(tmp_path):
    make_imagefolder(tmp_path)
    (tmp_path / "test" / "good").mkdir(parents=True)
    with pytest.raises(DataError, match="split 'test' has no images"):
        load_dataset(tmp_path)


def test_stratified_split_is_deterministic():
    samples = [Sample(Path(f"{i}.png"), i % 3) for i in range(30)]
    a = stratified_split(samples, 0.2, seed=5)
    b = stratified_split(samples, 0.2, seed=5)
    assert a == b
    assert sorted(s.label for s in a[1]) == [0, 0, 1, 1, 2, 2]
