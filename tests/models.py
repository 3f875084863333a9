"""Bundles with hand-made ONNX graphs: models that misbehave the way a broken engine does on a line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from edge_agent.runtime.hashing import sha256_file


def write_log_mean_model(path: Path, size: tuple[int, int], n_classes: int) -> None:
    """logits = log(mean over pixels of the normalized image) @ ones: finite for bright images, NaN for
    dark ones (log of a negative number), -inf for a mean of exactly 0 — one model, both outcomes."""
    import onnx
    from onnx import TensorProto, helper

    h, w = size
    weights = helper.make_tensor(
        "w", TensorProto.FLOAT, [3, n_classes], np.linspace(0.5, 1.5, 3 * n_classes, dtype=np.float32).tolist()
    )
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], axes=[2, 3], keepdims=0),
            helper.make_node("Log", ["mean"], ["log"]),
            helper.make_node("MatMul", ["log", "w"], ["logits"]),
        ],
        "log_mean",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, h, w])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", n_classes])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def nan_bundle(source: Path, target: Path) -> Path:
    """A copy of `source` whose model gives NaN for dark frames and finite scores for bright ones."""
    shutil.copytree(source, target)
    manifest_path = target / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for name in [n for n in manifest["files"] if n != "model.onnx"]:
        (target / name).unlink(missing_ok=True)
        del manifest["files"][name]
    manifest["model_file"] = "model.onnx"
    manifest["engines"] = []
    write_log_mean_model(target / "model.onnx", tuple(manifest["input"]["size"]), len(manifest["classes"]))
    manifest["files"]["model.onnx"] = {
        "sha256": sha256_file(target / "model.onnx"),
        "bytes": (target / "model.onnx").stat().st_size,
    }
    manifest["name"] = "nan-for-dark-frames"
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return target


def strict_loads(text: str | bytes) -> object:
    """json.loads that refuses NaN and Infinity, as strict parsers (Java, Go, browsers) do."""

    def refuse(constant: str) -> object:
        raise ValueError(f"not strict JSON: bare {constant}")

    return json.loads(text, parse_constant=refuse)
