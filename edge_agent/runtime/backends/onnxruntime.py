"""ONNX Runtime backend: CPU by default, CUDA/TensorRT execution providers when installed."""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from edge_agent.errors import BackendError, ModelBundleError, require
from edge_agent.runtime.backends.base import check_input, check_output
from edge_agent.runtime.bundle import ModelBundle

log = logging.getLogger(__name__)

PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


def session_options(threads: int | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # One inference thread per core; inter-op parallelism only helps branchy graphs.
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return options


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(
        self, bundle: ModelBundle, max_batch: int = 64, threads: int | None = None, model_file: str | None = None
    ) -> None:
        require("onnxruntime", "", "the ONNX Runtime backend")
        import onnxruntime as ort

        self.max_batch = max_batch
        self._size = bundle.manifest.input.size
        self._n_classes = len(bundle.manifest.classes)
        path = bundle.path / (model_file or bundle.manifest.model_file)
        providers = [p for p in PREFERRED_PROVIDERS if p in ort.get_available_providers()]
        try:
            self._session = ort.InferenceSession(str(path), session_options(threads), providers=providers)
        except Exception as e:
            raise ModelBundleError(f"{path}: ONNX Runtime cannot load it ({str(e).splitlines()[0]})") from e
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelBundleError(f"{path}: expected one input and one output, got {len(inputs)}/{len(outputs)}")
        self._input, self._output = inputs[0].name, outputs[0].name
        self._check_input(path, inputs[0].shape, self._size)
        self._check_classes(path, outputs[0].shape, len(bundle.manifest.classes))
        log.debug("onnxruntime session on %s with %s", path, self._session.get_providers())

    @staticmethod
    def _check_input(path: object, shape: list[object], size: tuple[int, int]) -> None:
        """The manifest's input size must be one the network accepts (fixed dims must agree)."""
        expected = [None, 3, *size]
        fixed = [(dim, want) for dim, want in zip(shape, expected, strict=False) if isinstance(dim, int)]
        if len(shape) != 4 or any(want is not None and dim != want for dim, want in fixed):
            raise ModelBundleError(
                f"{path}: input shape {shape} does not take the manifest's [N, 3, {size[0]}, {size[1]}]"
            )

    @staticmethod
    def _check_classes(path: object, shape: list[object], n_classes: int) -> None:
        if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != n_classes):
            raise ModelBundleError(f"{path}: output shape {shape} does not give {n_classes} class scores")

    def infer(self, batch: np.ndarray) -> np.ndarray:
        check_input(batch, self._size, self.max_batch)
        try:
            (logits,) = self._session.run([self._output], {self._input: batch})
        except Exception as e:
            raise BackendError(f"onnxruntime inference failed: {str(e).splitlines()[0]}") from e
        return check_output(self.name, np.asarray(logits), batch.shape[0], self._n_classes)

    def close(self) -> None:
        del self._session
