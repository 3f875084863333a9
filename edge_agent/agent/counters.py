"""What the daemon counts since start: the numbers behind stats, /metrics and /healthz."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Counters:
    frames: int = 0
    results: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    unjudged: int = 0  # frames whose model output was not finite (also counted in errors)
    dropped: int = 0
    spool_errors: int = 0
    started: float = field(default_factory=time.monotonic)
    inference_ms: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    result_times: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fps(self, window_s: float = 10.0) -> float:
        now = time.monotonic()
        recent = [t for t in list(self.result_times) if now - t <= window_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(1e-6, recent[-1] - recent[0])

    def inference_percentiles(self) -> tuple[float | None, float | None]:
        values = list(self.inference_ms)
        if not values:
            return None, None
        return float(np.percentile(values, 50)), float(np.percentile(values, 99))
