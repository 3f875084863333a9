"""Frame → network input, from the manifest's input spec. The trainer decodes its images with this code."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge_agent.errors import BadInputError
from edge_agent.runtime.manifest import InputSpec


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Bring any decoded image (gray, BGRA, 16-bit, float) to 8-bit 3-channel BGR."""
    if image.ndim not in (2, 3) or image.size == 0:
        raise BadInputError(f"image with shape {image.shape} is not a 2-D picture")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = np.clip(image * 255.0 if image.max() <= 1.0 else image, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise BadInputError(f"image dtype {image.dtype} is not supported")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if channels != 3:
        raise BadInputError(f"image with {channels} channels is not supported")
    return image


def resize_to_input(image_bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Resize a BGR uint8 image to the network size and put its channels in the network's order."""
    height, width = spec.size
    image = to_bgr8(image_bgr)
    if spec.resize == "center_crop":
        h, w = image.shape[:2]
        scale = max(height / h, width / w)
        new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        top, left = (new_h - height) // 2, (new_w - width) // 2
        image = image[top : top + height, left : left + width]
    elif image.shape[:2] != (height, width):
        # INTER_AREA shrinks without aliasing, which keeps thin scratches visible.
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    if spec.color == "RGB":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(image)


def normalize_batch(images_hwc: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 N×H×W×C (network channel order) → float32 N×C×H×W, normalized by mean/std."""
    scale = np.float32(1.0 / 255.0)
    mean = np.asarray(spec.mean, dtype=np.float32).reshape(1, 3, 1, 1)
    inv_std = (1.0 / np.asarray(spec.std, dtype=np.float32)).reshape(1, 3, 1, 1)
    batch = images_hwc.transpose(0, 3, 1, 2).astype(np.float32) * scale
    return np.ascontiguousarray((batch - mean) * inv_std, dtype=np.float32)


def preprocess(images_bgr: Sequence[np.ndarray], spec: InputSpec) -> np.ndarray:
    """Decoded BGR frames → one normalized NCHW float32 batch."""
    resized = np.stack([resize_to_input(image, spec) for image in images_bgr])
    return normalize_batch(resized, spec)


def decode_image_bytes(data: bytes) -> np.ndarray:
    """Decode PNG/JPEG/... bytes with OpenCV; raise BadInputError when they are not an image."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    if image is None:
        raise BadInputError("not a decodable image")
    return to_bgr8(image)


def read_image(path: str) -> np.ndarray:
    """Read an image file as 8-bit BGR, with an error naming the file."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as e:
        raise BadInputError(f"{path}: cannot read ({e.strerror})") from e
    try:
        return decode_image_bytes(data)
    except BadInputError as e:
        raise BadInputError(f"{path}: {e}") from e
