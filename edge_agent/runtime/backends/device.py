"""Which TensorRT version and GPU this machine has: the key under which a bundle's engines are filed."""

from __future__ import annotations

import re


def gpu_slug(name: str) -> str:
    """A GPU name fit for a file name: 'NVIDIA Jetson Orin' → 'nvidia-jetson-orin'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def device_identity() -> tuple[str, str] | None:
    """(TensorRT version, GPU slug) of this machine, or None where TensorRT or a GPU is absent."""
    try:
        import pycuda.driver as cuda
        import tensorrt as trt
    except ImportError:
        return None
    try:
        cuda.init()
        return str(trt.__version__), gpu_slug(cuda.Device(0).name())
    except Exception:  # pycuda raises its own error types when no driver or GPU exists
        return None
