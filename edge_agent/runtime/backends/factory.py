"""Pick and open a backend for a bundle: by name, or `auto` (a matching TensorRT engine, else ONNX Runtime)."""

from __future__ import annotations

import logging

import numpy as np

from edge_agent.errors import BackendError, BadInputError, ModelBundleError
from edge_agent.runtime.backends.base import Backend
from edge_agent.runtime.backends.device import device_identity
from edge_agent.runtime.bundle import ModelBundle
from edge_agent.runtime.manifest import EngineEntry

log = logging.getLogger(__name__)

BACKEND_NAMES = ("auto", "onnxruntime", "tensorrt")


def matching_engine(bundle: ModelBundle) -> EngineEntry | None:
    """The bundle's TensorRT engine built for this GPU and TensorRT version, if any."""
    identity = device_identity()
    if identity is None:
        return None
    trt_version, gpu = identity
    for engine in bundle.manifest.engines:
        if engine.trt_version == trt_version and engine.gpu == gpu:
            return engine
    return None


def create_backend(
    bundle: ModelBundle, name: str = "auto", max_batch: int = 16, warmup: bool = True, threads: int | None = None
) -> Backend:
    """Open the named backend for the bundle; `auto` prefers a matching TensorRT engine."""
    if name not in BACKEND_NAMES:
        raise BadInputError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    backend: Backend
    engine = matching_engine(bundle) if name in ("auto", "tensorrt") else None
    if engine is not None:
        from edge_agent.runtime.backends.tensorrt import TensorRTBackend

        backend = TensorRTBackend(bundle, engine)
    elif name == "tensorrt":
        raise ModelBundleError(
            f"model bundle {bundle.path}: no TensorRT engine for this device "
            "(build one on this box: edge-agent trainer build-engine MODEL_DIR --fp16)"
        )
    else:
        from edge_agent.runtime.backends.onnxruntime import OnnxRuntimeBackend

        backend = OnnxRuntimeBackend(bundle, max_batch=max_batch, threads=threads)
    log.info("backend %s chosen for %s", backend.name, bundle.path)
    if warmup:
        warm_up(backend, bundle)
    return backend


def warm_up(backend: Backend, bundle: ModelBundle, runs: int = 3) -> None:
    """First runs allocate and tune; do them at load so the watchdog never sees them."""
    h, w = bundle.manifest.input.size
    dummy = np.zeros((1, 3, h, w), dtype=np.float32)
    try:
        for _ in range(runs):
            backend.infer(dummy)
    except BadInputError:
        raise
    except Exception as e:
        raise BackendError(f"backend {backend.name} failed its warm-up run: {e}") from e
