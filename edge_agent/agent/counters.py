"""What the daemon counts since start: the numbers behind stats, /metrics and /healthz."""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

# Upper bounds (seconds) of the inference-time histogram: 0.5 ms (TensorRT, small student) to 2.5 s (a
# ResNet-50 on a busy CPU).
INFERENCE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


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
    # Prometheus: results by (verdict, label); per-frame inference time as a histogram (counts per bucket).
    by_verdict_label: Counter[tuple[str, str]] = field(default_factory=Counter)
    inference_buckets: list[int] = field(default_factory=lambda: [0] * (len(INFERENCE_BUCKETS) + 1))
    inference_sum_s: float = 0.0
    inference_count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe_inference(self, seconds: float, frames: int) -> None:
        """Per-frame inference time, `frames` frames of one batch (call with the lock held)."""
        self.inference_ms.extend([seconds * 1000.0] * frames)
        self.inference_buckets[bisect.bisect_left(INFERENCE_BUCKETS, seconds)] += frames
        self.inference_sum_s += seconds * frames
        self.inference_count += frames

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
