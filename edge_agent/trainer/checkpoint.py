"""Model checkpoints (`trainer teacher` output, `--teacher`, `trainer export` input)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edge_agent.errors import BadInputError
from edge_agent.fsutil import atomic_write_bytes
from edge_agent.runtime.manifest import InputSpec
from edge_agent.trainer.models import count_params, create_model, stem_stride

KIND = "edge-agent-model/1"


def save_model(
    path: Path, model: nn.Module, arch: str, classes: list[str], good_class: str, spec: InputSpec, **extra: Any
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_atomically(
        {
            "kind": KIND,
            "arch": arch,
            "classes": classes,
            "good_class": good_class,
            "input": spec.model_dump(),
            "params": count_params(model),
            "stem_stride": stem_stride(model),
            "state_dict": model.state_dict(),
            **extra,
        },
        path,
    )


def save_atomically(state: dict[str, Any], path: Path) -> None:
    """torch.save, but a crash mid-write leaves the previous file whole (--resume reads it)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes; BadInputError when it is not one of ours."""
    file = Path(path)
    if not file.is_file():
        raise BadInputError(f"checkpoint {file}: no such file")
    try:
        state = torch.load(file, map_location="cpu", weights_only=False)
    except Exception as e:
        raise BadInputError(f"checkpoint {file}: cannot be read ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or state.get("kind") != KIND:
        raise BadInputError(f"checkpoint {file}: not an edge-agent model checkpoint")
    # Checkpoints from before the stem option have torchvision's stem.
    model = create_model(state["arch"], len(state["classes"]), stem_stride=state.get("stem_stride", 2))
    model.load_state_dict(state["state_dict"])
    model.eval()
    return model, state
