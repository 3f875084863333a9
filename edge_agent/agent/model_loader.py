"""Open the configured bundle as an Inspector; with `backend = auto`, any TensorRT trouble falls back to
ONNX Runtime, with a warning and a note that status and /healthz carry."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.agent.sdnotify import notify
from edge_agent.errors import MissingDependencyError
from edge_agent.runtime.backends import create_backend, matching_engine
from edge_agent.runtime.backends.device import device_identity
from edge_agent.runtime.bundle import ModelBundle, load_bundle
from edge_agent.runtime.inspector import Inspector
from edge_agent.settings import ModelSettings

log = logging.getLogger(__name__)

ENGINE_BUILD_TIMEOUT_USEC = 900_000_000


@dataclass
class LoadedModel:
    inspector: Inspector
    notes: list[str] = field(default_factory=list)  # what runs differently than configured, and why


def open_inspector(model: ModelSettings, path: Path) -> LoadedModel:
    notes: list[str] = []
    bundle = load_bundle(path)
    if model.backend != "onnxruntime" and model.build_engine and matching_engine(bundle) is None:
        bundle = _build_engine_if_possible(model, path, bundle, notes)
    # The capture thread needs a core of its own: by default inference takes the others.
    threads = model.threads or max(1, (os.cpu_count() or 1) - 1)
    try:
        backend = create_backend(bundle, model.backend, max_batch=model.max_batch, threads=threads)
    except MissingDependencyError:
        raise
    except Exception as e:
        if model.backend != "auto" or matching_engine(bundle) is None:
            raise
        note = f"TensorRT engine failed to load ({type(e).__name__}: {e}); using ONNX Runtime"
        log.warning("%s", note)
        notes.append(note)
        backend = create_backend(bundle, "onnxruntime", max_batch=model.max_batch, threads=threads)
    return LoadedModel(Inspector(bundle, backend, model.threshold), notes)


def _build_engine_if_possible(model: ModelSettings, path: Path, bundle: ModelBundle, notes: list[str]) -> ModelBundle:
    if device_identity() is None:
        return bundle
    log.warning("no TensorRT engine for this GPU in %s: building one now (this can take minutes)", path)
    notify(f"EXTEND_TIMEOUT_USEC={ENGINE_BUILD_TIMEOUT_USEC}")
    try:
        from edge_agent.runtime.tools.engine_build import build_engine

        build_engine(path, precision="fp16", max_batch=max(model.max_batch, 1))
        return load_bundle(path)
    except Exception as e:  # TensorRT and pycuda raise their own types; none of them may stop the line
        if model.backend == "tensorrt":
            raise
        note = f"TensorRT engine build failed ({type(e).__name__}: {e}); using ONNX Runtime"
        log.warning("%s", note)
        notes.append(note)
        return load_bundle(path)
