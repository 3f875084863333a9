"""`trainer photos`: real photographs with defects from defect-synthesis (the `photos` extra)."""

import importlib.util

import cv2
import numpy as np
import pytest

from edge_agent.cli import main
from edge_agent.data import photos
from edge_agent.data.layout import load_dataset
from edge_agent.errors import BadInputError

needs_extra = pytest.mark.skipif(
    importlib.util.find_spec("skimage") is None or importlib.util.find_spec("defect_synthesis") is None,
    reason="the photos extra (scikit-image, defect-synthesis) is not installed",
)


@needs_extra
def test_writes_the_trainer_layout_reproducibly(tmp_path, capsys):
    for name in ("a", "b"):
        assert main(["trainer", "photos", str(tmp_path / name), "--per-class", "9", "--image-size", "48"]) == 0
    assert "wrote 125 images" in capsys.readouterr().out  # (9 train + 8 val + 8 test) × 5 classes
    splits = load_dataset(tmp_path / "a")
    assert splits.classes == sorted(photos.CLASSES)
    first = sorted((tmp_path / "a").rglob("*.png"))
    second = sorted((tmp_path / "b").rglob("*.png"))
    assert [p.relative_to(tmp_path / "a") for p in first] == [p.relative_to(tmp_path / "b") for p in second]
    # The renderer draws pits and stains from numpy's global generator: the same seed must give the same pixels.
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(first, second, strict=True))
    image = cv2.imread(str(first[0]), cv2.IMREAD_COLOR)
    assert image.shape == (48, 48, 3)


@needs_extra
def test_every_defect_image_carries_its_defect():
    rng = np.random.default_rng(0)
    images = photos.photographs(["grass"])
    makers = photos.renderers(64)
    for kind in ("scratch", "crack", "stain", "pit"):
        for _ in range(5):
            state = rng.bit_generator.state
            defect = photos.part(rng, images, makers, kind, 64)
            rng.bit_generator.state = state  # the same crop, without a defect
            plain = photos.crop(rng, images[0], 64)
            assert np.count_nonzero(np.abs(defect.astype(int) - plain.astype(int)).max(axis=2) > 8) >= 4, kind


def test_an_unknown_photograph_is_one_line_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["trainer", "photos", str(tmp_path / "x"), "--photos", "wood"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "wood" in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_without_the_extra_the_error_names_it(monkeypatch):
    monkeypatch.setattr(photos.importlib.util, "find_spec", lambda _name: None)
    with pytest.raises(BadInputError, match=r"edge-inspection-agent\[photos\]"):
        photos.photographs(["brick"])
