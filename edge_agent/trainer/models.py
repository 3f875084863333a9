"""Torchvision classifiers by name, with their heads replaced, BatchNorm tamed and feature taps."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edge_agent.errors import BadInputError

log = logging.getLogger(__name__)

# ImageNet statistics: right for pretrained weights and harmless from scratch.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BN_MOMENTUM = 0.1


def _set_module(model: nn.Module, dotted: str, module: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def replace_head(model: nn.Module, n_classes: int) -> None:
    """Swap the last Linear layer for one with `n_classes` outputs."""
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise BadInputError(f"{type(model).__name__} has no Linear head to replace")
    name, head = linears[-1]
    _set_module(model, name, nn.Linear(head.in_features, n_classes))


def fix_batchnorm_momentum(model: nn.Module, momentum: float = BN_MOMENTUM) -> None:
    """torchvision's MobileNetV3/EfficientNet use momentum 0.01: after a few hundred steps the
    running statistics still mostly reflect their initial values, and eval mode scores at chance."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: list[torch.Tensor]) -> None:
    """Recompute BatchNorm running statistics exactly (cumulative average) on clean images."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or not batches:
        return
    was_training = model.training
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for batch in batches:
        model(batch)
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    model.train(was_training)


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The classifier's last Linear layer (the one replace_head swaps in for pretrained weights)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return list(linears[-1].parameters()) if linears else []


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def weights_help(arch: str) -> str:
    from torchvision.models import get_model_weights

    weights = get_model_weights(arch).DEFAULT
    filename = Path(weights.url).name
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    return f"download {weights.url} and place it as {cache / filename}"


def _stem(model: nn.Module) -> nn.Conv2d:
    """The first convolution, the one that meets the image (every torchvision classifier has one)."""
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


def stem_stride(model: nn.Module) -> int:
    return int(_stem(model).stride[0])


def arch_label(arch: str, stride: int) -> str:
    """How tables name a model: the torchvision name, and the stem when it is not torchvision's."""
    return arch + (" (stem stride 1)" if stride == 1 else "")


def set_stem_stride(model: nn.Module, arch: str, stride: int) -> None:
    """Run the first convolution at `stride` 1 or 2 (torchvision's). At 1 the first block sees the image at
    its full resolution, as CIFAR-sized networks do: the parameters stay, the multiply-adds after the stem
    grow about fourfold. Only a stride-2 stem is changed: a patch embedding (ViT, stride 16) is not a stem."""
    if stride == 2:
        return
    if stride != 1:
        raise BadInputError(f"stem stride {stride}: choose 1 (full resolution) or 2 (torchvision's)")
    stem = _stem(model)
    if tuple(stem.stride) != (2, 2):
        raise BadInputError(
            f"stem stride 1 needs a stride-2 first convolution; {arch}'s has stride {stem.stride[0]} "
            "(keep torchvision's stem: stem stride 2)"
        )
    stem.stride = (1, 1)


def residual_branch_ends(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The last BatchNorm of every residual branch (the one whose output is added to the shortcut) in
    torchvision's ResNets, MobileNetV2/V3, EfficientNets and MnasNets."""
    from torchvision.models.resnet import BasicBlock, Bottleneck

    ends = []
    for module in model.modules():
        if isinstance(module, BasicBlock | Bottleneck):
            branch: nn.Module = nn.ModuleList([c for name, c in module.named_children() if name != "downsample"])
        elif getattr(module, "use_res_connect", False) or getattr(module, "apply_residual", False):
            branch = module
        else:
            continue
        norms = [m for m in branch.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if norms:
            ends.append(norms[-1])
    return ends


def zero_init_residual(model: nn.Module) -> int:
    """Start every residual branch at zero, so that each block begins as the identity and the network as
    a shallow one (Goyal et al. 2017; torchvision's ResNets offer it as `zero_init_residual`). From scratch
    on 600 photographs a 12-epoch MobileNetV3-Small otherwise stalls in some seeds with two classes
    unseparated (training accuracy 73 %, test 75.5 %; with it 96 % and 93.0 %, docs/benchmarks.md).
    For the students only: a 12-epoch ResNet-18 teacher started this way scored 84.0 % against 93.5 %.
    Returns how many branches were zeroed."""
    ends = residual_branch_ends(model)
    for norm in ends:
        nn.init.zeros_(norm.weight)
    return len(ends)


def create_model(
    arch: str,
    n_classes: int,
    pretrained: bool = False,
    stem_stride: int = 2,
    zero_residual: bool = False,
    **builder_options: Any,
) -> nn.Module:
    """A torchvision classifier by name; ImageNet weights through torchvision's weights API.

    `stem_stride` 1 runs its first convolution at stride 1 (see set_stem_stride); 2 keeps torchvision's.
    `zero_residual` starts every residual branch at zero when training from scratch (zero_init_residual;
    the students do, the teacher does not). `builder_options` go to torchvision's model builder as they
    are (e.g. MobileNetV3's `dilated=True`, which the benchmarks measure)."""
    from torchvision.models import get_model, get_model_weights, list_models

    if arch not in list_models(module=__import__("torchvision").models):
        raise BadInputError(f"unknown architecture {arch!r} (torchvision classification models, e.g. resnet50)")
    if pretrained:
        weights = get_model_weights(arch).DEFAULT
        try:
            model = get_model(arch, weights=weights, **builder_options)
        except (OSError, RuntimeError) as e:  # URLError is an OSError
            raise BadInputError(
                f"cannot fetch ImageNet weights for {arch} ({type(e).__name__}); {weights_help(arch)}"
            ) from e
        replace_head(model, n_classes)
    else:
        model = get_model(arch, weights=None, num_classes=n_classes, **builder_options)
        if zero_residual:
            zero_init_residual(model)
    fix_batchnorm_momentum(model)
    set_stem_stride(model, arch, stem_stride)
    return model


def feature_module(model: nn.Module) -> nn.Module:
    """The last spatial stage, tapped for feature hints."""
    for name in ("layer4", "features", "trunk_output"):
        if hasattr(model, name):
            return model.get_submodule(name)
    raise BadInputError(f"{type(model).__name__}: no known feature stage for --feature-kd")


def feature_channels(model: nn.Module, image_size: int) -> int:
    captured: list[torch.Tensor] = []
    handle = feature_module(model).register_forward_hook(lambda _m, _i, out: captured.append(out))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, image_size, image_size))
    handle.remove()
    model.train(was_training)
    return int(captured[0].shape[1])
