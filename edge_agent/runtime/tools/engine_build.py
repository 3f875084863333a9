"""`trainer build-engine`: a TensorRT 10 engine from the bundle's ONNX, on the device that will run it.

INT8 here is TensorRT's implicit (calibrated) quantization, deprecated since TensorRT 10.1 in favour of
explicit Q/DQ models; it still builds on 10.x and is kept for Jetson boxes that have no Q/DQ model yet.
Every file is written atomically: a power cut during a build leaves the old manifest, never half of one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import BadInputError, ModelBundleError, require
from edge_agent.fsutil import atomic_write_bytes
from edge_agent.runtime.backends.device import device_identity
from edge_agent.runtime.bundle import file_entry, load_bundle, write_manifest
from edge_agent.runtime.manifest import EngineEntry

log = logging.getLogger(__name__)

CALIBRATION_CACHE = "calibration.int8.cache"
TIMING_CACHE = "timing.cache"
CALIBRATION_BATCH = 8


def engine_file_name(trt_version: str, gpu: str, precision: str) -> str:
    return f"model.{trt_version}.{gpu}.{precision}.engine"


def _entropy_calibrator(trt: Any, cuda: Any, batches: list[np.ndarray], cache_path: Path) -> Any:
    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        """Feeds calibration batches of one fixed size, the size of the calibration profile.

        TensorRT calibrates at the calibration profile's OPT shape and asks for exactly that many images
        per `get_batch`; the device buffer is sized for it, and every batch fed has that size.
        """

        def __init__(self) -> None:
            super().__init__()
            self._batches = iter(batches)
            self._device = cuda.mem_alloc(batches[0].nbytes) if batches else None

        def get_batch_size(self) -> int:
            return CALIBRATION_BATCH

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self._batches, None)
            if batch is None or self._device is None:
                return None
            cuda.memcpy_htod(self._device, np.ascontiguousarray(batch))
            return [int(self._device)] * len(names)

        def read_calibration_cache(self) -> bytes | None:
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            atomic_write_bytes(cache_path, bytes(cache))

    return EntropyCalibrator()


def calibration_batches(bundle_dir: Path, calib: Path | None, limit: int = 256) -> list[np.ndarray]:
    """Full batches of CALIBRATION_BATCH preprocessed training images (a short last batch is left out)."""
    if calib is None:
        return []
    from edge_agent.data.layout import load_dataset
    from edge_agent.runtime.bundle import read_manifest
    from edge_agent.runtime.preprocess import preprocess, read_image

    manifest = read_manifest(bundle_dir)
    paths = [s.path for s in load_dataset(calib, manifest.good_class).train][:limit]
    step = CALIBRATION_BATCH
    return [
        preprocess([read_image(str(p)) for p in paths[i : i + step]], manifest.input)
        for i in range(0, len(paths) - step + 1, step)
    ]


def build_engine(
    model_dir: Path, precision: str = "fp16", calib: Path | None = None, max_batch: int = 16
) -> EngineEntry:
    """Build, write and register an engine; exit-2 errors name what is missing."""
    require("tensorrt", "tensorrt", "building a TensorRT engine")
    require("pycuda", "tensorrt", "building a TensorRT engine")
    import pycuda.driver as cuda
    import tensorrt as trt

    from edge_agent.runtime.backends.tensorrt import primary_context

    identity = device_identity()
    if identity is None:
        raise BadInputError("no CUDA GPU visible: a TensorRT engine must be built on the device that runs it")
    with primary_context(cuda):
        return _build(trt, cuda, model_dir, precision, calib, max_batch, identity)


def _build(
    trt: Any,
    cuda: Any,
    model_dir: Path,
    precision: str,
    calib: Path | None,
    max_batch: int,
    identity: tuple[str, str],
) -> EngineEntry:
    bundle = load_bundle(model_dir)
    trt_version, gpu = identity
    h, w = bundle.manifest.input.size
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(bundle.onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelBundleError(f"{bundle.onnx_path}: TensorRT cannot parse it ({errors})")
    if network.num_inputs != 1:
        raise ModelBundleError(f"{bundle.onnx_path}: expected one input, the network has {network.num_inputs}")
    input_name = network.get_input(0).name
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, (1, 3, h, w), (max(1, max_batch // 2), 3, h, w), (max_batch, 3, h, w))
    config.add_optimization_profile(profile)
    timing_path = model_dir / TIMING_CACHE
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    if not config.set_timing_cache(timing, ignore_mismatch=False):
        log.warning("the timing cache in %s is from another TensorRT or GPU: building without it", timing_path)
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    if precision == "int8":
        cache_path = model_dir / CALIBRATION_CACHE
        batches = calibration_batches(model_dir, calib)
        if not batches and not cache_path.is_file():
            raise BadInputError(
                f"--int8 needs --calib DATA with at least {CALIBRATION_BATCH} training images "
                "(no calibration cache in the bundle)"
            )
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)  # layers INT8 cannot take fall back to FP16, not FP32
        config.int8_calibrator = _entropy_calibrator(trt, cuda, batches, cache_path)
        # Calibration runs at this profile's OPT shape: one fixed shape, the calibrator's batch.
        calibration = builder.create_optimization_profile()
        shape = (CALIBRATION_BATCH, 3, h, w)
        calibration.set_shape(input_name, shape, shape, shape)
        config.set_calibration_profile(calibration)
    else:
        config.set_flag(trt.BuilderFlag.FP16)
    log.info("building %s TensorRT engine for %s (TensorRT %s); this can take minutes", precision, gpu, trt_version)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelBundleError(f"{model_dir}: TensorRT failed to build the engine (see the log above)")
    name = engine_file_name(trt_version, gpu, precision)
    atomic_write_bytes(model_dir / name, bytes(serialized))
    atomic_write_bytes(timing_path, bytes(config.get_timing_cache().serialize()))
    manifest = bundle.manifest
    entry = EngineEntry(file=name, trt_version=trt_version, gpu=gpu, precision=precision, max_batch=max_batch)
    manifest.engines = [e for e in manifest.engines if e.file != name] + [entry]
    manifest.files[name] = file_entry(model_dir / name)
    if (model_dir / CALIBRATION_CACHE).is_file():
        manifest.files[CALIBRATION_CACHE] = file_entry(model_dir / CALIBRATION_CACHE)
    write_manifest(model_dir, manifest)  # last: the new engine is used only once the manifest names it
    return entry
