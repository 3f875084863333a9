"""The backend protocol and the checks every backend applies at its edges (input before, output after)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edge_agent.errors import BackendError, BadInputError


class Backend(Protocol):
    """Runs the student: NCHW float32 in, logits out."""

    name: str
    max_batch: int

    def infer(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


def check_input(batch: np.ndarray, size: tuple[int, int], max_batch: int) -> None:
    """A wrong shape is the caller's mistake: say so before the backend crashes on it."""
    h, w = size
    if batch.dtype != np.float32 or batch.ndim != 4 or batch.shape[1:] != (3, h, w):
        raise BadInputError(
            f"input batch {batch.dtype}{list(batch.shape)} does not match the model's float32[N, 3, {h}, {w}]"
        )
    if not 1 <= batch.shape[0] <= max_batch:
        raise BadInputError(f"batch of {batch.shape[0]} is outside this backend's 1..{max_batch}")


def check_output(backend: str, logits: np.ndarray, batch_size: int, n_classes: int) -> np.ndarray:
    """One row of class scores per input image, as float32: anything else is a broken model or engine.

    Non-finite values are not checked here: they are a per-frame outcome (one frame's FP16 overflow must
    not take its batch-mates' verdicts with it), judged by `postprocess.decide`.
    """
    if logits.ndim != 2 or logits.shape != (batch_size, n_classes):
        raise BackendError(
            f"{backend} returned scores of shape {list(logits.shape)}, expected [{batch_size}, {n_classes}]"
        )
    if logits.dtype != np.float32:
        if not np.issubdtype(logits.dtype, np.floating):
            raise BackendError(f"{backend} returned {logits.dtype} scores, expected float32")
        logits = logits.astype(np.float32)
    return logits
