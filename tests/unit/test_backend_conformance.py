"""Every backend must give the ONNX reference's logits; those that cannot run here skip with a reason."""

import numpy as np
import pytest

from edge_agent.errors import BadInputError
from edge_agent.runtime.backends import create_backend, matching_engine
from edge_agent.runtime.bundle import load_bundle


def reference_logits(bundle, batch):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(bundle.onnx_path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"images": batch})[0]


def tensorrt_skip_reason():
    from edge_agent.runtime.backends.device import device_identity

    if device_identity() is None:
        return "TensorRT backend: needs tensorrt + pycuda and a CUDA GPU (none on this machine)"
    return None


@pytest.fixture(scope="session")
def engine_bundle(tiny_bundle, tmp_path_factory):
    """A copy of the tiny bundle with an FP16 engine built for this GPU (only where TensorRT runs)."""
    import shutil

    from edge_agent.runtime.tools.engine_build import build_engine

    target = tmp_path_factory.mktemp("engine") / "bundle"
    shutil.copytree(tiny_bundle, target)
    build_engine(target, precision="fp16", max_batch=8)
    return target


BACKENDS = ["onnxruntime", pytest.param("tensorrt", marks=[pytest.mark.gpu, pytest.mark.tensorrt])]
TOLERANCE = {"onnxruntime": 1e-4, "tensorrt": 2e-2}  # TensorRT engines run in FP16


@pytest.fixture(params=BACKENDS)
def backend(request, tiny_bundle):
    path = tiny_bundle
    if request.param == "tensorrt":
        if reason := tensorrt_skip_reason():
            pytest.skip(reason)
        path = request.getfixturevalue("engine_bundle")
    bundle = load_bundle(path)
    runner = create_backend(bundle, request.param, max_batch=8)
    yield bundle, runner
    runner.close()


@pytest.mark.parametrize("batch_size", [1, 8])
def test_backend_matches_onnx_reference(backend, batch_size):
    bundle, runner = backend
    h, w = bundle.manifest.input.size
    batch = np.random.default_rng(batch_size).standard_normal((batch_size, 3, h, w)).astype(np.float32)
    logits = runner.infer(batch)
    expected = reference_logits(bundle, batch)
    assert logits.shape == (batch_size, len(bundle.manifest.classes))
    scale = max(1.0, float(np.abs(expected).max()))
    assert np.abs(logits - expected).max() <= TOLERANCE[runner.name] * scale


@pytest.mark.parametrize("shape", [(1, 3, 31, 32), (1, 1, 32, 32), (3, 32, 32)])
def test_wrong_input_shape_is_a_clear_error(backend, shape):
    _, runner = backend
    with pytest.raises(BadInputError, match="does not match"):
        runner.infer(np.zeros(shape, np.float32))


def test_batch_over_the_limit_is_a_clear_error(backend):
    bundle, runner = backend
    h, w = bundle.manifest.input.size
    with pytest.raises(BadInputError, match="outside"):
        runner.infer(np.zeros((runner.max_batch + 1, 3, h, w), np.float32))


def test_auto_falls_back_to_onnxruntime_without_an_engine(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    if matching_engine(bundle) is None:
        assert create_backend(bundle, "auto").name == "onnxruntime"


def test_tensorrt_without_engine_is_bad_input(tiny_bundle):
    from edge_agent.errors import ModelBundleError

    bundle = load_bundle(tiny_bundle)
    if matching_engine(bundle) is None:
        with pytest.raises(ModelBundleError, match="no TensorRT engine"):
            create_backend(bundle, "tensorrt")


@pytest.mark.parametrize(
    ("logits", "message"),
    [
        (np.zeros((2, 7), np.float32), "shape"),  # a class count the manifest does not have
        (np.zeros((3, 5), np.float32), "shape"),  # a row per image, or it is not our answer
        (np.zeros((2,), np.float32), "shape"),
        (np.zeros((2, 5), np.int64), "dtype|int64"),
    ],
)
def test_output_that_does_not_fit_the_manifest_is_a_backend_error(logits, message):
    """The check every backend applies after each call (TensorRT engines are built elsewhere and trusted less)."""
    from edge_agent.errors import BackendError
    from edge_agent.runtime.backends.base import check_output

    with pytest.raises(BackendError, match=message):
        check_output("test", logits, batch_size=2, n_classes=5)


def test_float16_output_is_widened_not_refused():
    from edge_agent.runtime.backends.base import check_output

    out = check_output("test", np.ones((2, 5), np.float16), batch_size=2, n_classes=5)
    assert out.dtype == np.float32
