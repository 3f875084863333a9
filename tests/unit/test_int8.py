import pytest

from edge_agent.runtime.tools.quantize import choose_int8


def test_int8_wins_when_faster_and_accurate():
    # ResNet-18 on this CPU: about 3x faster, same accuracy
    use, reason = choose_int8(fp32_ms=30.0, int8_ms=10.0, fp32_accuracy=0.90, int8_accuracy=0.895)
    assert use
    assert "faster" in reason


def test_int8_loses_when_slower():
    # MobileNetV3-Small on this CPU: INT8 is slower
    use, reason = choose_int8(fp32_ms=1.2, int8_ms=2.0, fp32_accuracy=0.85, int8_accuracy=0.85)
    assert not use
    assert "not faster" in reason


def test_int8_loses_when_it_costs_accuracy():
    use, reason = choose_int8(fp32_ms=30.0, int8_ms=10.0, fp32_accuracy=0.90, int8_accuracy=0.88)
    assert not use
    assert "accuracy points" in reason


@pytest.mark.slow
def test_quantize_bundle_records_measurement_and_choice(tiny_bundle, tiny_data, tmp_path):
    import shutil

    from edge_agent.data.layout import load_dataset
    from edge_agent.runtime.bundle import load_bundle
    from edge_agent.runtime.tools.quantize import INT8_FILE, quantize_bundle

    bundle_dir = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle_dir)
    splits = load_dataset(tiny_data)
    record = quantize_bundle(bundle_dir, splits, [s.path for s in splits.test])
    manifest = load_bundle(bundle_dir).manifest  # hashes still verify
    assert INT8_FILE in manifest.files
    assert manifest.metrics["int8"]["chosen"] == record["chosen"]
    assert manifest.model_file == (INT8_FILE if record["chosen"] == "int8" else "model.onnx")
    for key in ("fp32_ms", "int8_ms", "fp32_accuracy", "int8_accuracy", "reason"):
        assert key in record
