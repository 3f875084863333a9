import numpy as np
import pytest

from edge_agent.runtime.manifest import InputSpec
from edge_agent.runtime.preprocess import preprocess, read_image, resize_to_input, to_bgr8

SPEC = InputSpec(size=(32, 32), color="RGB", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def test_runtime_preprocessing_equals_trainer_transform(tiny_data):
    torch = pytest.importorskip("torch")
    from edge_agent.trainer.tensors import Normalizer

    paths = sorted((tiny_data / "test").rglob("*.png"))[:8]
    images = [read_image(str(p)) for p in paths]
    runtime = preprocess(images, SPEC)
    uint8 = torch.from_numpy(np.stack([resize_to_input(i, SPEC) for i in images]))
    trainer = Normalizer(SPEC, torch.device("cpu"))(uint8).numpy()
    assert runtime.shape == (8, 3, 32, 32)
    assert np.abs(runtime - trainer).max() <= 1e-5


def test_color_order_and_normalization():
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 2] = 255  # pure red in BGR
    spec = InputSpec(size=(4, 4), color="RGB", mean=(0, 0, 0), std=(1, 1, 1))
    out = preprocess([bgr], spec)
    assert out[0, 0].min() == 1.0  # red lands in channel 0 for an RGB network
    assert out[0, 2].max() == 0.0
    bgr_spec = spec.model_copy(update={"color": "BGR"})
    assert preprocess([bgr], bgr_spec)[0, 2].min() == 1.0


def test_center_crop_keeps_aspect():
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, 10:30] = 200
    spec = SPEC.model_copy(update={"resize": "center_crop", "size": (10, 10)})
    out = resize_to_input(wide, spec)
    assert out.shape == (10, 10, 3)
    assert out.min() == 200  # only the bright centre survives the crop


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((8, 8), np.uint8),
        np.zeros((8, 8, 1), np.uint8),
        np.zeros((8, 8, 4), np.uint8),
        np.zeros((8, 8, 3), np.uint16),
        np.zeros((8, 8, 3), np.float32),
    ],
)
def test_any_depth_or_channel_count_becomes_bgr8(image):
    out = to_bgr8(image)
    assert out.dtype == np.uint8
    assert out.shape == (8, 8, 3)


def test_unsupported_images_are_bad_input(tmp_path):
    from edge_agent.errors import BadInputError

    with pytest.raises(BadInputError, match="channels"):
        to_bgr8(np.zeros((8, 8, 5), np.uint8))
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG not really")
    with pytest.raises(BadInputError, match=r"broken\.png"):
        read_image(str(corrupt))
