"""Shared fixtures: a tiny synthetic data set and a tiny bundle distilled from it (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.data.synth import write_dataset


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data") / "synth32"
    write_dataset(root, per_class=10, image_size=32, seed=1)
    return root


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path) -> Path:
    """A real bundle from a real (tiny) `trainer distill` run; torch needed only to build it."""
    pytest.importorskip("torch", reason="building the test bundle needs the trainer extra")
    from edge_agent.trainer.distill import DistillOptions, run_distill

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    run_distill(
        DistillOptions(
            data=tiny_data,
            out=out,
            teacher_arch="resnet18",
            epochs=1,
            teacher_epochs=1,
            image_size=32,
            batch_size=16,
            progress=False,
        )
    )
    return out
