"""`trainer build-engine`: a TensorRT engine from the bundle's ONNX, on the device that will run it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import BadInputError, ModelBundleError, require
from edge_agent.runtime.bundle import file_entry, load_bundle, write_manifest
from edge_agent.runtime.manifest import EngineEntry

log = logging.getLogger(__name__)

CALIBRATION_CACHE = "calibration.int8.cache"
TIMING_CACHE = "timing.cache"


def engine_file_name(trt_version: str, gpu: str, precision: str) -> str:
    return f"model.{trt_version}.{gpu}.{precision}.engine"


def _entropy_calibrator(trt: Any, cuda: Any, batches: list[np.ndarray], cache_path: Path) -> Any:
    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        """Feeds calibration batches; the cache lets other boxes skip calibration."""

        def __init__(self) -> None:
            super().__init__()
            self._batches = iter(batches)
            self._device = cuda.mem_alloc(batches[0].nbytes) if batches else None

        def get_batch_size(self) -> int:
            return int(batches[0].shape[0]) if batches else 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self._batches, None)
            if batch is None or self._device is None:
                return None
            cuda.memcpy_htod(self._device, np.ascontiguousarray(batch))
            return [int(self._device)]

        def read_calibration_cache(self) -> bytes | None:
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache: bytes) -> None:
            cache_path.write_bytes(bytes(cache))

    return EntropyCalibrator()


def calibration_batches(
    bundle_dir: Path, calib: Path | None, size: tuple[int, int], batch: int = 8, limit: int = 256
) -> list[np.ndarray]:
    if calib is None:
        return []
    from edge_agent.data.layout import load_dataset
    from edge_agent.runtime.bundle import read_manifest
    from edge_agent.runtime.preprocess import preprocess, read_image

    manifest = read_manifest(bundle_dir)
    paths = [s.path for s in load_dataset(calib, manifest.good_class).train][:limit]
    return [
        preprocess([read_image(str(p)) for p in paths[i : i + batch]], manifest.input)
        for i in range(0, len(paths) - batch + 1, batch)
    ]


def build_engine(
    model_dir: Path, precision: str = "fp16", calib: Path | None = None, max_batch: int = 16
) -> EngineEntry:
    """Build, write and register an engine; exit-2 errors name what is missing."""
    require("tensorrt", "tensorrt", "building a TensorRT engine")
    require("pycuda", "tensorrt", "building a TensorRT engine")
    import pycuda.autoinit  # noqa: F401  (creates the CUDA context the builder and calibrator use)
    import pycuda.driver as cuda
    import tensorrt as trt

    from edge_agent.runtime.backends.tensorrt import device_identity

    bundle = load_bundle(model_dir)
    identity = device_identity()
    if identity is None:
        raise BadInputError("no CUDA GPU visible: a TensorRT engine must be built on the device that runs it")
    trt_version, gpu = identity
    h, w = bundle.manifest.input.size
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(bundle.onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelBundleError(f"{bundle.onnx_path}: TensorRT cannot parse it ({errors})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
    profile = builder.create_optimization_profile()
    profile.set_shape("images", (1, 3, h, w), (max(1, max_batch // 2), 3, h, w), (max_batch, 3, h, w))
    config.add_optimization_profile(profile)
    timing_path = model_dir / TIMING_CACHE
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    if precision == "int8":
        cache_path = model_dir / CALIBRATION_CACHE
        batches = calibration_batches(model_dir, calib, (h, w))
        if not batches and not cache_path.is_file():
            raise BadInputError("--int8 needs --calib DATA (no calibration cache in the bundle)")
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)  # layers INT8 cannot take fall back to FP16, not FP32
        config.int8_calibrator = _entropy_calibrator(trt, cuda, batches, cache_path)
        config.set_calibration_profile(profile)
    else:
        config.set_flag(trt.BuilderFlag.FP16)
    log.info("building %s TensorRT engine for %s (TensorRT %s); this can take minutes", precision, gpu, trt_version)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelBundleError(f"{model_dir}: TensorRT failed to build the engine (see the log above)")
    name = engine_file_name(trt_version, gpu, precision)
    (model_dir / name).write_bytes(bytes(serialized))
    timing_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    manifest = bundle.manifest
    entry = EngineEntry(
        file=name,
        trt_version=trt_version,
        gpu=gpu,
        precision=precision,
        max_batch=max_batch,
    )
    manifest.engines = [e for e in manifest.engines if e.file != name] + [entry]
    manifest.files[name] = file_entry(model_dir / name)
    if (model_dir / CALIBRATION_CACHE).is_file():
        manifest.files[CALIBRATION_CACHE] = file_entry(model_dir / CALIBRATION_CACHE)
    write_manifest(model_dir, manifest)
    return entry
