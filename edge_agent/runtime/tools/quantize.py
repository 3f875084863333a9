"""CPU INT8: static QDQ quantization with ONNX Runtime, kept only when it is faster and as accurate."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.data.layout import DatasetSplits
from edge_agent.fsutil import atomic_write_bytes
from edge_agent.runtime.backends.onnxruntime import OnnxRuntimeBackend
from edge_agent.runtime.bench import measure
from edge_agent.runtime.bundle import ModelBundle, file_entry, load_bundle, write_manifest
from edge_agent.runtime.inspector import Inspector
from edge_agent.runtime.preprocess import preprocess, read_image
from edge_agent.runtime.tools.evaluate import bundle_probabilities

log = logging.getLogger(__name__)

INT8_FILE = "model.int8.onnx"
MAX_ACCURACY_DROP = 0.01
MIN_SPEEDUP = 1.05


def choose_int8(fp32_ms: float, int8_ms: float, fp32_accuracy: float, int8_accuracy: float) -> tuple[bool, str]:
    """INT8 becomes the CPU default only when it is faster and within one point of FP32."""
    speedup = fp32_ms / int8_ms if int8_ms > 0 else 0.0
    drop = fp32_accuracy - int8_accuracy
    if speedup < MIN_SPEEDUP:
        return False, f"INT8 is not faster ({speedup:.2f}× of FP32 speed); FP32 kept"
    if drop > MAX_ACCURACY_DROP:
        return False, f"INT8 loses {100 * drop:.1f} accuracy points (> 1); FP32 kept"
    return True, f"INT8 is {speedup:.2f}× faster and within {100 * max(drop, 0):.1f} points; INT8 is the CPU default"


class _CalibrationReader:
    def __init__(self, batches: list[np.ndarray]) -> None:
        self._batches: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {"images": batch}


def median_latency_ms(backend: OnnxRuntimeBackend, size: tuple[int, int], runs: int = 60) -> float:
    batch = np.random.default_rng(0).standard_normal((1, 3, *size)).astype(np.float32)
    return measure(backend.infer, batch, seconds=0.0, min_runs=runs)["p50_ms"]


def _accuracy(bundle: ModelBundle, model_file: str, paths: Sequence[Path], labels: np.ndarray) -> float:
    backend = OnnxRuntimeBackend(bundle, model_file=model_file)
    probs, kept = bundle_probabilities(Inspector(bundle, backend), paths)
    return float((probs.argmax(1) == labels[kept]).mean())


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """ONNX Runtime's quantizer warns on the root logger; keep the user's terminal for our own lines."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _pre_processed(model: Path, out: Path) -> Path:
    """Shape inference and graph fusion before quantization (ONNX Runtime's advice); needs `onnx`."""
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        quant_pre_process(str(model), str(out), skip_symbolic_shape=True)
        return out
    except Exception as e:  # optional step: quantize the model as it is
        log.debug("quantization pre-processing skipped: %s", e)
        return model


def quantize_bundle(
    bundle_dir: Path, splits: DatasetSplits, test_paths: Sequence[Path], calibration_images: int = 64
) -> dict[str, Any]:
    """Write model.int8.onnx, measure it against FP32 and record the choice in the manifest."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    bundle = load_bundle(bundle_dir)
    manifest = bundle.manifest
    calib = [s.path for s in splits.train[:: max(1, len(splits.train) // calibration_images)]][:calibration_images]
    batches = [preprocess([read_image(str(p))], manifest.input) for p in calib]
    with tempfile.TemporaryDirectory(dir=bundle_dir) as tmp, _quiet_root_logger():
        source = _pre_processed(bundle.onnx_path, Path(tmp) / "prep.onnx")
        staged = Path(tmp) / INT8_FILE
        quantize_static(
            str(source),
            str(staged),
            _CalibrationReader(batches),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        # Written beside the bundle, then renamed into it: never a half-written model under its real name.
        atomic_write_bytes(bundle_dir / INT8_FILE, staged.read_bytes())
    manifest.files[INT8_FILE] = file_entry(bundle_dir / INT8_FILE)
    names = {s.path: splits.classes[s.label] for s in splits.test}
    labels = np.array([manifest.classes.index(names[p]) for p in test_paths])
    size = manifest.input.size
    fp32_ms = median_latency_ms(OnnxRuntimeBackend(bundle, model_file="model.onnx"), size)
    int8_ms = median_latency_ms(OnnxRuntimeBackend(bundle, model_file=INT8_FILE), size)
    fp32_acc = _accuracy(bundle, "model.onnx", test_paths, labels)
    int8_acc = _accuracy(bundle, INT8_FILE, test_paths, labels)
    use_int8, reason = choose_int8(fp32_ms, int8_ms, fp32_acc, int8_acc)
    record = {
        "fp32_ms": fp32_ms,
        "int8_ms": int8_ms,
        "fp32_accuracy": fp32_acc,
        "int8_accuracy": int8_acc,
        "chosen": "int8" if use_int8 else "fp32",
        "reason": reason,
    }
    manifest.metrics["int8"] = record
    manifest.model_file = INT8_FILE if use_int8 else "model.onnx"
    write_manifest(bundle_dir, manifest)
    log.info("INT8: %s", reason)
    return record
