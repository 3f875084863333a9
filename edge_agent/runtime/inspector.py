"""One inference path for the agent, `predict`, `evaluate` and `bench`: frames in, verdicts out."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.runtime.backends import Backend, create_backend
from edge_agent.runtime.bundle import ModelBundle, load_bundle
from edge_agent.runtime.postprocess import Unjudged, Verdict, decide, softmax
from edge_agent.runtime.preprocess import preprocess


@dataclass(frozen=True)
class Timing:
    preprocess_ms: float
    inference_ms: float


class Inspector:
    """A verified bundle and an open backend; thread-confined (use it from one thread)."""

    def __init__(self, bundle: ModelBundle, backend: Backend, threshold: float | None = None) -> None:
        self.bundle = bundle
        self.backend = backend
        self.threshold = bundle.manifest.threshold if threshold is None else threshold

    @classmethod
    def open(cls, path: str, backend: str = "auto", threshold: float | None = None, max_batch: int = 16) -> Inspector:
        bundle = load_bundle(path)
        return cls(bundle, create_backend(bundle, backend, max_batch=max_batch), threshold)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities for an already preprocessed batch, split to the backend's max batch."""
        step = self.backend.max_batch
        parts = [softmax(self.backend.infer(batch[i : i + step])) for i in range(0, len(batch), step)]
        return np.concatenate(parts)

    def inspect(self, images_bgr: Sequence[np.ndarray]) -> tuple[list[Verdict | Unjudged], Timing]:
        """One outcome per image, in order: a Verdict, or Unjudged where the model's output is not finite."""
        manifest = self.bundle.manifest
        t0 = time.perf_counter()
        batch = preprocess(images_bgr, manifest.input)
        t1 = time.perf_counter()
        probs = self.probabilities(batch)
        t2 = time.perf_counter()
        verdicts = decide(probs, manifest.classes, manifest.good_index, self.threshold)
        return verdicts, Timing((t1 - t0) * 1000.0, (t2 - t1) * 1000.0)

    def close(self) -> None:
        self.backend.close()
