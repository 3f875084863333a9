"""Student → ONNX (checked against PyTorch in ONNX Runtime) → a bundle with its manifest."""

from __future__ import annotations

import datetime as dt
import logging
import platform
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edge_agent import __version__
from edge_agent.errors import EdgeAgentError
from edge_agent.runtime.bundle import file_entry, write_manifest
from edge_agent.runtime.manifest import ArchInfo, InputSpec, Manifest

log = logging.getLogger(__name__)

OPSET = 17
PARITY_TOLERANCE = 1e-4


def export_onnx(model: nn.Module, path: Path, image_size: tuple[int, int]) -> None:
    model = model.cpu().eval()
    dummy = torch.zeros(2, 3, *image_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def onnx_parity(model: nn.Module, path: Path, batch: torch.Tensor) -> tuple[float, float]:
    """Max |logit difference| between PyTorch and ONNX Runtime on real images, and the logits' scale."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model.cpu().eval()(batch.cpu()).numpy()
    (actual,) = session.run(["logits"], {"images": batch.cpu().numpy().astype(np.float32)})
    return float(np.abs(actual - expected).max()), float(np.abs(expected).max())


def package_versions() -> dict[str, str]:
    import onnxruntime
    import torchvision

    return {
        "edge-agent": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def arch_info(arch: str, model: nn.Module) -> ArchInfo:
    from edge_agent.trainer.models import count_params, stem_stride

    return ArchInfo(arch=arch, params=count_params(model), stem_stride=stem_stride(model))


def write_bundle(
    out: Path,
    model: nn.Module,
    *,
    arch: str,
    classes: list[str],
    good_class: str,
    spec: InputSpec,
    threshold: float,
    parity_batch: torch.Tensor,
    metrics: dict[str, Any],
    teacher: ArchInfo | None,
    trainer: dict[str, Any],
    name: str | None = None,
) -> Manifest:
    """Export the student and write manifest.json; raises when ONNX and PyTorch disagree."""
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    export_onnx(model, onnx_path, spec.size)
    diff, scale = onnx_parity(model, onnx_path, parity_batch)
    # float32 rounding grows with the logits' size: 1e-4 absolute up to |logit| 1, relative beyond.
    tolerance = PARITY_TOLERANCE * max(1.0, scale)
    if diff > tolerance:
        raise EdgeAgentError(f"ONNX export differs from PyTorch by {diff:.2e} (> {tolerance:.1e}); not shipped")
    log.info("ONNX parity on %d real images: max |Δlogit| = %.2e", len(parity_batch), diff)
    manifest = Manifest(
        name=name or out.name,
        version=dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d.%H%M%S"),
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        classes=classes,
        good_class=good_class,
        input=spec,
        threshold=threshold,
        files={"model.onnx": file_entry(onnx_path)},
        model_file="model.onnx",
        metrics=metrics,
        teacher=teacher,
        student=arch_info(arch, model),
        trainer={**trainer, "versions": package_versions(), "onnx_opset": OPSET, "onnx_parity_max_abs": diff},
    )
    write_manifest(out, manifest)
    return manifest
