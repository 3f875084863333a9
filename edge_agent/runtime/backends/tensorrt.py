"""TensorRT 10 backend: named I/O tensors, pycuda page-locked buffers, one stream, execute_async_v3.

Everything TensorRT tells us about the engine is checked against the manifest before the first frame:
one input and one output, the input's layout and size, FP32 I/O, and one score per class.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from edge_agent.errors import BackendError, ModelBundleError, require
from edge_agent.runtime.backends.base import check_input, check_output
from edge_agent.runtime.bundle import ModelBundle
from edge_agent.runtime.manifest import EngineEntry

log = logging.getLogger(__name__)


@contextmanager
def primary_context(cuda: Any) -> Iterator[Any]:
    """The device's primary context, current on this thread for the block (no second context, as
    `pycuda.autoinit` would make and leave current for the process's life)."""
    cuda.init()
    context = cuda.Device(0).retain_primary_context()
    context.push()
    try:
        yield context
    finally:
        context.pop()


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, bundle: ModelBundle, engine: EngineEntry) -> None:
        require("tensorrt", "tensorrt", "the TensorRT backend")
        require("pycuda", "tensorrt", "the TensorRT backend")
        import pycuda.driver as cuda
        import tensorrt as trt

        self._cuda = cuda
        self._size = bundle.manifest.input.size
        self._n_classes = len(bundle.manifest.classes)
        cuda.init()
        # The primary context is shared with anything else in the process; we push it around every
        # call so the thread that infers (not the one that loaded) has it current.
        self._ctx = cuda.Device(0).retain_primary_context()
        self._ctx.push()
        try:
            self._load(trt, cuda, bundle, engine)
        finally:
            self._ctx.pop()

    def _load(self, trt: Any, cuda: Any, bundle: ModelBundle, entry: EngineEntry) -> None:
        path = bundle.path / entry.file
        self._trt_logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._trt_logger)
        self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise ModelBundleError(f"{path}: TensorRT could not deserialize the engine (built elsewhere?)")
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelBundleError(f"{path}: expected one input and one output tensor, got {inputs} / {outputs}")
        self._input, self._output = inputs[0], outputs[0]
        for tensor in (self._input, self._output):
            dtype = self._engine.get_tensor_dtype(tensor)
            if dtype != trt.DataType.FLOAT:
                raise ModelBundleError(f"{path}: tensor {tensor!r} is {dtype}, this backend feeds and reads FP32")
        _, _, max_shape = self._engine.get_tensor_profile_shape(self._input, 0)
        h, w = self._size
        if len(max_shape) != 4 or tuple(max_shape[1:]) != (3, h, w):
            raise ModelBundleError(
                f"{path}: engine input {list(max_shape)} does not take the manifest's [N, 3, {h}, {w}]"
            )
        out_dims = list(self._engine.get_tensor_shape(self._output))
        if len(out_dims) != 2 or out_dims[1] not in (-1, self._n_classes):
            raise ModelBundleError(f"{path}: engine output {out_dims} does not give {self._n_classes} class scores")
        self.max_batch = int(max_shape[0])
        self._context = self._engine.create_execution_context()
        self._host_in = cuda.pagelocked_empty(int(np.prod(max_shape)), dtype=np.float32)
        self._host_out = cuda.pagelocked_empty(self.max_batch * self._n_classes, dtype=np.float32)
        self._dev_in = cuda.mem_alloc(self._host_in.nbytes)
        self._dev_out = cuda.mem_alloc(self._host_out.nbytes)
        self._context.set_tensor_address(self._input, int(self._dev_in))
        self._context.set_tensor_address(self._output, int(self._dev_out))
        self._stream = cuda.Stream()
        log.info("TensorRT engine %s loaded (batch 1..%d)", entry.file, self.max_batch)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        check_input(batch, self._size, self.max_batch)
        cuda = self._cuda
        self._ctx.push()
        try:
            if not self._context.set_input_shape(self._input, batch.shape):
                raise BackendError(f"TensorRT refused input shape {list(batch.shape)}")
            host_in = self._host_in[: batch.size]
            host_in[:] = batch.ravel()
            cuda.memcpy_htod_async(self._dev_in, host_in, self._stream)
            if not self._context.execute_async_v3(self._stream.handle):
                raise BackendError("TensorRT execute_async_v3 reported failure")
            out_shape = tuple(self._context.get_tensor_shape(self._output))
            count = int(np.prod(out_shape))
            if count > self._host_out.size:
                raise BackendError(f"TensorRT output {list(out_shape)} is larger than its buffer")
            cuda.memcpy_dtoh_async(self._host_out[:count], self._dev_out, self._stream)
            self._stream.synchronize()
            logits = np.array(self._host_out[:count]).reshape(out_shape)
        except BackendError:
            raise
        except Exception as e:
            raise BackendError(f"TensorRT inference failed: {e}") from e
        finally:
            self._ctx.pop()
        return check_output(self.name, logits, batch.shape[0], self._n_classes)

    def close(self) -> None:
        self._ctx.push()
        try:
            self._dev_in.free()
            self._dev_out.free()
            del self._context, self._engine
        finally:
            self._ctx.pop()
            self._ctx.detach()
