"""Seconds per training step in float32 and in bfloat16 autocast, per model, on this machine.

One AdamW step (forward, backward, update) on a batch of random 128 px images, as `fit` takes it; the
median of `--steps` after one warm-up step. What `--precision auto` buys depends on the CPU: without
native bfloat16 (AVX-512 BF16 or AMX) the emulated type is slower, and `auto` keeps float32. Run alone.

    python benchmarks/precision.py
    python benchmarks/precision.py --models resnet50:2 mobilenet_v3_small:1 --batch 16
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from edge_agent.trainer.models import create_model
from edge_agent.trainer.precision import autocast, cpu_has_native_bf16


def step_seconds(arch: str, stem_stride: int, dtype: torch.dtype | None, batch: int, size: int, steps: int) -> float:
    torch.manual_seed(0)
    model = create_model(arch, 5, stem_stride=stem_stride, zero_residual=True).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images, labels = torch.randn(batch, 3, size, size), torch.randint(0, 5, (batch,))
    times = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        with autocast(torch.device("cpu"), dtype):
            loss = torch.nn.functional.cross_entropy(model(images).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--models", nargs="+", default=["resnet18:2", "resnet18:1", "resnet50:2", "mobilenet_v3_small:1"],
        help="ARCH:STEM_STRIDE",
    )  # fmt: skip
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps({"native_bf16": cpu_has_native_bf16(), "threads": torch.get_num_threads()}), flush=True)
    for spec in args.models:
        arch, stride = spec.split(":")
        fp32, bf16 = (
            step_seconds(arch, int(stride), d, args.batch, args.size, args.steps) for d in (None, torch.bfloat16)
        )
        row = {"arch": arch, "stem_stride": int(stride), "fp32_s": round(fp32, 3), "bf16_s": round(bf16, 3)}
        print(json.dumps({**row, "speedup": round(fp32 / bf16, 2)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
