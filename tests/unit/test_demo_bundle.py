"""The bundle shipped in models/demo works before anyone trains: verified, and predict runs on it."""

from pathlib import Path

import numpy as np

from edge_agent.data.synth import render
from edge_agent.runtime.bundle import load_bundle
from edge_agent.runtime.inspector import Inspector

DEMO = Path(__file__).parents[2] / "models" / "demo"


def test_demo_bundle_is_complete_and_verified():
    bundle = load_bundle(DEMO)
    manifest = bundle.manifest
    assert manifest.good_class == "good"
    assert set(manifest.classes) == {"good", "scratch", "crack", "stain", "pit"}
    assert manifest.student.params * 5 <= manifest.teacher.params
    assert (DEMO / "report.md").is_file()
    assert sum(p.stat().st_size for p in DEMO.iterdir()) < 20 * 1024 * 1024  # a few MB, not a checkpoint


def test_demo_bundle_inspects_synthetic_parts():
    inspector = Inspector.open(str(DEMO), "onnxruntime")
    rng = np.random.default_rng(5)
    images = [render(rng, 64, kind) for kind in ("good", "crack", "pit")]
    verdicts, timing = inspector.inspect(images)
    for verdict in verdicts:
        assert abs(sum(verdict.scores.values()) - 1.0) < 1e-3
        assert verdict.verdict == ("fail" if verdict.defect_score >= inspector.threshold else "pass")
    # A pit is the class this bundle sees best (report.md): it must not pass.
    assert verdicts[2].verdict == "fail"
    assert timing.inference_ms > 0
