"""`bench`: warm up, then p50/p99 latency and throughput of one backend at a few batch sizes."""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from edge_agent.runtime.backends import create_backend
from edge_agent.runtime.bundle import load_bundle


def measure(infer: Any, batch: np.ndarray, seconds: float, min_runs: int = 20) -> dict[str, float]:
    for _ in range(3):
        infer(batch)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - started < seconds:
        t0 = time.perf_counter()
        infer(batch)
        times.append(time.perf_counter() - t0)
    ms = np.asarray(times) * 1000.0
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "fps": float(len(batch) * len(ms) / (ms.sum() / 1000.0)),
        "runs": len(ms),
    }


def bench_bundle(
    model_dir: str,
    backend: str = "auto",
    batches: tuple[int, ...] = (1, 8),
    seconds: float = 3.0,
    progress: bool = True,
) -> dict[str, Any]:
    bundle = load_bundle(model_dir)
    runner = create_backend(bundle, backend, max_batch=max(batches))
    h, w = bundle.manifest.input.size
    rng = np.random.default_rng(0)
    runs = []
    for n in batches:
        if progress:
            print(f"bench: {runner.name} batch {n} for {seconds:.0f} s …", file=sys.stderr, flush=True)
        batch = rng.standard_normal((n, 3, h, w)).astype(np.float32)
        runs.append({"batch": n, **measure(runner.infer, batch, seconds)})
    runner.close()
    first = runs[0]
    return {
        "backend": runner.name,
        "model": str(model_dir),
        "model_file": bundle.manifest.model_file,
        "input": [h, w],
        "batch": first["batch"],
        "p50_ms": first["p50_ms"],
        "p99_ms": first["p99_ms"],
        "fps": first["fps"],
        "runs": runs,
    }
