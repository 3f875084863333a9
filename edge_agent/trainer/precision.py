"""The arithmetic a training step runs in.

Convolutions dominate training, and on hardware with native reduced-precision arithmetic they run faster
in it: on the reference 2-core CPU (AVX-512 BF16) a ResNet-18 or ResNet-50 step at 128 px takes 0.55-0.6x
its float32 time in bfloat16; a MobileNetV3-Small step (depthwise convolutions) gains little or nothing
(docs/benchmarks.md, benchmarks/precision.py). The weights, the optimiser and the losses stay float32
(autocast); only the layers autocast lists run in the narrow type. On a CPU without native bfloat16 the
emulation is slower than float32, so `auto` keeps float32 there.
"""

from __future__ import annotations

import torch

from edge_agent.trainer_options import PRECISIONS


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: oneDNN runs bfloat16 convolutions natively there."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    # Private probes, hence the getattr: a torch without them is treated as a CPU without bfloat16.
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The narrow type a step on `device` runs in, or None for float32 throughout."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.float16  # with a gradient scaler (fit.Loop)
    return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """A context that runs the listed layers in `dtype` (from autocast_dtype); None: float32, a no-op."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def arithmetic_name(device: torch.device, precision: str) -> str:
    """What the report says the train steps ran in."""
    dtype = autocast_dtype(device, precision)
    return {None: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}[dtype]
