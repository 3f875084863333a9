"""Runtime benchmark: the student in ONNX Runtime against the seed's deployment (ResNet-50 in PyTorch eager).

At 224 px, batch 1, on this machine's CPU, all in one run so the ratios are fair. Also per model: FP32 vs
INT8 latency and accuracy, and the exporter's choice (models trained briefly on synthetic data at 64 px).
Weights do not change latency, so the 224 px timing models are freshly initialised.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edge_agent.runtime.backends.onnxruntime import OnnxRuntimeBackend
from edge_agent.runtime.bench import measure
from edge_agent.runtime.bundle import load_bundle
from edge_agent.runtime.manifest import ArchInfo
from edge_agent.trainer.distill import DistillOptions, input_spec
from edge_agent.trainer.export import write_bundle
from edge_agent.trainer.models import arch_label, count_params, create_model

CLASSES = ["good", "scratch", "crack", "stain", "pit"]
STUDENT = DistillOptions.student_arch  # the trainer's default student ...
STUDENT_STEM = DistillOptions.student_stem_stride  # ... with the trainer's default stem
# (model, stem stride): the default student, the same with torchvision's stem, a larger student, teachers.
MODELS = [(STUDENT, STUDENT_STEM), ("mobilenet_v3_small", 2), ("mobilenet_v3_large", 2), ("resnet18", 2),
          ("resnet50", 2)]  # fmt: skip


def make_bundle(arch: str, out: Path, size: int, model: torch.nn.Module | None = None) -> Path:
    model = model or create_model(arch, len(CLASSES)).eval()
    write_bundle(
        out,
        model,
        arch=arch,
        classes=CLASSES,
        good_class="good",
        spec=input_spec(size),
        threshold=0.5,
        parity_batch=torch.randn(2, 3, size, size),
        metrics={},
        teacher=None,
        trainer={},
    )
    return out


def latency_table(work: Path, size: int, seconds: float) -> list[dict]:
    rows = []
    batch = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    torch.set_num_threads(os.cpu_count() or 1)
    for arch, stem in dict.fromkeys(MODELS):  # once each: with stem stride 2 the default student is a twin
        model = create_model(arch, len(CLASSES), stem_stride=stem).eval()
        with torch.no_grad():
            eager = measure(lambda x, m=model: m(torch.from_numpy(x)), batch, seconds)
        name = arch_label(arch, stem)
        rows.append({"model": name, "params": count_params(model), "runtime": "pytorch-eager", **eager})
        bundle = load_bundle(make_bundle(arch, work / f"{arch}-{stem}", size, model))
        ort = measure(OnnxRuntimeBackend(bundle).infer, batch, seconds)
        rows.append({"model": name, "params": count_params(model), "runtime": "onnxruntime-fp32", **ort})
        print(f"  {name}: eager p50 {eager['p50_ms']:.2f} ms, ORT p50 {ort['p50_ms']:.2f} ms", flush=True)
    return rows


def int8_table(work: Path, data_size: int, epochs: int) -> list[dict]:
    from edge_agent.data.layout import load_dataset
    from edge_agent.data.synth import write_dataset
    from edge_agent.runtime.tools.quantize import quantize_bundle
    from edge_agent.trainer.distill import DistillOptions, prepare
    from edge_agent.trainer.fit import FitConfig, fit

    data = work / "data"
    write_dataset(data, per_class=120, image_size=data_size, seed=3)
    prep = prepare(DistillOptions(data=data, out=work / "x", image_size=data_size), torch.device("cpu"))
    splits = load_dataset(data)
    rows = []
    for arch in ("resnet18", "mobilenet_v3_large", "mobilenet_v3_small"):
        model = create_model(arch, len(prep.splits.classes))
        fit(model, prep.train, prep.val, prep.norm, FitConfig(epochs=epochs, progress=False), label=arch)
        out = work / f"int8-{arch}"
        write_bundle(
            out,
            model,
            arch=arch,
            classes=prep.splits.classes,
            good_class="good",
            spec=prep.spec,
            threshold=0.5,
            parity_batch=prep.norm(prep.val.images[:8]),
            metrics={},
            teacher=ArchInfo(arch=arch, params=0),
            trainer={},
        )
        record = quantize_bundle(out, splits, [s.path for s in splits.test])
        rows.append({"model": arch, **record})
        print(f"  {arch}: {record['reason']}", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--int8-epochs", type=int, default=25)
    parser.add_argument("--no-int8", action="store_true", help="latency table only")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"latency at {args.size} px, batch 1, {os.cpu_count()} CPU threads:", flush=True)
        rows = latency_table(work, args.size, args.seconds)
        int8 = []
        if not args.no_int8:
            print("INT8 vs FP32 (static QDQ, calibrated on training images, accuracy on the test split):", flush=True)
            int8 = int8_table(work, 64, args.int8_epochs)
    p50 = {(r["model"], r["runtime"]): r["p50_ms"] for r in rows}
    student = p50[(arch_label(STUDENT, STUDENT_STEM), "onnxruntime-fp32")]
    print("\n| model | params | runtime | p50 ms | p99 ms | images/s |\n| --- | ---: | --- | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['model']} | {r['params']:,} | {r['runtime']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['fps']:.0f} |"
        )
    vs_eager = p50[("resnet50", "pytorch-eager")] / student
    vs_ort = p50[("resnet50", "onnxruntime-fp32")] / student
    print(
        f"\nstudent ({arch_label(STUDENT, STUDENT_STEM)}, ONNX Runtime) vs the seed's ResNet-50 in PyTorch eager: "
        f"{vs_eager:.1f}x lower p50 latency; vs ResNet-50 in ONNX Runtime: {vs_ort:.1f}x"
    )
    print(
        "\n| model | FP32 ms | INT8 ms | FP32 acc | INT8 acc | chosen | why |\n"
        "| --- | ---: | ---: | ---: | ---: | --- | --- |"
    )
    for r in int8:
        print(
            f"| {r['model']} | {r['fp32_ms']:.2f} | {r['int8_ms']:.2f} | {r['fp32_accuracy']:.1%} | "
            f"{r['int8_accuracy']:.1%} | {r['chosen']} | {r['reason']} |"
        )
    print(f"\n({time.monotonic() - started:.0f} s)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "latency": rows,
                    "int8": int8,
                    "student_vs_resnet50_eager": vs_eager,
                    "student_vs_resnet50_ort": vs_ort,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
