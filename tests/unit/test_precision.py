"""The train step's arithmetic: bfloat16 where the CPU runs it natively, float32 weights and losses."""

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from edge_agent.trainer import precision  # noqa: E402
from edge_agent.trainer.fit import FitConfig, fit  # noqa: E402
from edge_agent.trainer.tensors import Normalizer  # noqa: E402
from tests.unit.test_fit_loop import SPEC, tiny_data, tiny_model  # noqa: E402

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_narrows_only_where_the_hardware_runs_the_narrow_type(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.autocast_dtype(CPU, "auto") is torch.bfloat16
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.autocast_dtype(CPU, "auto") is None  # emulated bfloat16 is slower than float32
    assert precision.autocast_dtype(CUDA, "auto") is torch.float16
    assert precision.autocast_dtype(CPU, "bf16") is torch.bfloat16  # asked for: used even when emulated
    assert precision.autocast_dtype(CUDA, "fp32") is None
    assert precision.arithmetic_name(CPU, "fp32") == "float32"
    with pytest.raises(ValueError, match="choose one of auto, fp32, bf16"):
        precision.autocast_dtype(CPU, "fp8")


def convolution_dtypes(cfg: FitConfig) -> tuple[set[torch.dtype], nn.Module]:
    model, data = tiny_model(), tiny_data()
    seen: set[torch.dtype] = set()
    model[0].register_forward_hook(lambda _m, _i, out: seen.add(out.dtype) if model.training else None)
    result = fit(model, data, data, Normalizer(SPEC, CPU), cfg)
    assert all(row["loss"] == row["loss"] for row in result.history)  # no NaN
    return seen, model


def test_a_bf16_step_convolves_in_bfloat16_and_keeps_float32_weights():
    cfg = FitConfig(epochs=2, batch_size=8, progress=False, precision="bf16", lam=0.0)
    seen, model = convolution_dtypes(cfg)
    assert seen == {torch.bfloat16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_fp32_keeps_every_step_in_float32():
    seen, _ = convolution_dtypes(FitConfig(epochs=1, batch_size=8, progress=False, precision="fp32"))
    assert seen == {torch.float32}


def test_a_distilling_bf16_step_computes_its_losses_in_float32(monkeypatch):
    """Softmax at τ over bfloat16 logits would round away the teacher's small odds (8 bits of mantissa)."""
    from edge_agent.trainer import losses

    seen: set[torch.dtype] = set()
    forward = losses.DistillationLoss.forward

    def recording(self, logits, teacher_logits, labels):  # type: ignore[no-untyped-def]
        seen.update({logits.dtype, teacher_logits.dtype})
        return forward(self, logits, teacher_logits, labels)

    monkeypatch.setattr(losses.DistillationLoss, "forward", recording)
    torch.manual_seed(1)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(192, 3))  # runs live, inside the step's autocast
    data = tiny_data()
    cfg = FitConfig(epochs=1, batch_size=8, progress=False, precision="bf16", lam=1.0, tau=2.0)
    fit(tiny_model(), data, data, Normalizer(SPEC, CPU), cfg, teacher=teacher)
    assert seen == {torch.float32}
