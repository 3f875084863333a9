"""A plain reference recipe, written independently of the trainer's code, to hold the trainer to.

torchvision models, AdamW (lr 2e-3) with a one-cycle schedule, random horizontal and vertical flips only,
BatchNorm momentum 0.1, cross-entropy + Hinton KD (τ = 4, λ = 1). Images decoded here with OpenCV
(INTER_AREA to the input size, ImageNet normalisation). Prints one JSON line: teacher, student alone and
distilled student test accuracy with seconds.

    python benchmarks/reference.py data/photo-brick-gravel --epochs 12
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import torchvision

MEAN, STD = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def load(split: Path, classes: list[str], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((split / name).iterdir()):
            decoded = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if decoded is None:
                raise SystemExit(f"{path}: not an image OpenCV can decode")
            image = cv2.resize(decoded, (size, size), interpolation=cv2.INTER_AREA)
            images.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
            labels.append(label)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    return (x - MEAN) / STD, torch.tensor(labels)


def model(arch: str, n: int) -> torch.nn.Module:
    net = getattr(torchvision.models, arch)(num_classes=n)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 0.1
    return net


def train(net, x, y, epochs, teacher=None, tau=4.0, lam=1.0, batch=32, seed=0):
    torch.manual_seed(seed)
    steps = epochs * ((len(x) + batch - 1) // batch)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(x)).split(batch):
            xb = x[idx].clone()
            flip_h, flip_v = torch.rand(len(xb)) < 0.5, torch.rand(len(xb)) < 0.5
            xb[flip_h] = xb[flip_h].flip(3)
            xb[flip_v] = xb[flip_v].flip(2)
            logits = net(xb)
            loss = F.cross_entropy(logits, y[idx])
            if teacher is not None:
                with torch.no_grad():
                    soft = F.softmax(teacher(xb) / tau, dim=1)
                kd = F.kl_div(F.log_softmax(logits / tau, dim=1), soft, reduction="batchmean") * tau * tau
                loss = loss + lam * kd
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return net.eval()


@torch.no_grad()
def accuracy(net, x, y) -> float:
    return float((torch.cat([net(b).argmax(1) for b in x.split(128)]) == y).float().mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--teacher-arch", default="resnet18")
    parser.add_argument("--student-arch", default="mobilenet_v3_small")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    classes = sorted(p.name for p in (args.data / "train").iterdir())
    (xtr, ytr), (xte, yte) = (load(args.data / s, classes, args.size) for s in ("train", "test"))
    row: dict[str, object] = {"data": args.data.name, "epochs": args.epochs, "recipe": "reference"}
    for name, arch, teacher in (("teacher", args.teacher_arch, None), ("alone", args.student_arch, None)):
        started = time.perf_counter()
        net = train(model(arch, len(classes)), xtr, ytr, args.epochs, seed=args.seed)
        row[name] = {"arch": arch, "accuracy": accuracy(net, xte, yte), "seconds": round(time.perf_counter() - started)}
        print(f"reference {name}: {row[name]}", file=sys.stderr, flush=True)  # an hour at 90 epochs: say where it is
        if name == "teacher":
            teacher = net
    started = time.perf_counter()
    net = train(model(args.student_arch, len(classes)), xtr, ytr, args.epochs, teacher=teacher, seed=args.seed)
    row["distilled"] = {
        "arch": args.student_arch,
        "accuracy": accuracy(net, xte, yte),
        "seconds": round(time.perf_counter() - started),
    }
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
