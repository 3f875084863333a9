import json
import shutil

import pytest

from edge_agent.cli import main
from edge_agent.errors import ModelBundleError
from edge_agent.runtime.bundle import load_bundle


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path):
    target = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, target)
    return target


def test_valid_bundle_loads(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    assert bundle.manifest.good_class == "good"
    assert "model.onnx" in bundle.manifest.files


def test_tampered_model_is_refused_with_exit_2(bundle_copy, tiny_data, capsys):
    data = bytearray((bundle_copy / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle_copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelBundleError, match="sha256"):
        load_bundle(bundle_copy)
    image = next((tiny_data / "test" / "good").glob("*.png"))
    assert main(["predict", str(bundle_copy), str(image)]) == 2
    err = capsys.readouterr().err
    assert "does not match the manifest" in err
    assert err.count("\n") == 1


def test_truncated_model_is_refused(bundle_copy):
    path = bundle_copy / "model.onnx"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelBundleError, match="truncated"):
        load_bundle(bundle_copy)


def test_missing_file_and_missing_manifest_keys(bundle_copy):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    del manifest["classes"]
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelBundleError, match="classes"):
        load_bundle(bundle_copy)


def test_missing_model_file(bundle_copy):
    (bundle_copy / "model.onnx").unlink()
    with pytest.raises(ModelBundleError, match="missing"):
        load_bundle(bundle_copy)


def test_manifest_not_json(bundle_copy):
    (bundle_copy / "manifest.json").write_text("{ not json")
    with pytest.raises(ModelBundleError, match="not valid JSON"):
        load_bundle(bundle_copy)


def test_good_class_must_be_a_class(bundle_copy):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["good_class"] = "fine"
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelBundleError, match="good_class"):
        load_bundle(bundle_copy)


def test_wrong_class_count_is_refused_by_the_backend(bundle_copy):
    from edge_agent.runtime.backends import create_backend
    from edge_agent.runtime.bundle import write_manifest

    bundle = load_bundle(bundle_copy)
    manifest = bundle.manifest.model_copy(update={"classes": [*bundle.manifest.classes, "extra"]})
    write_manifest(bundle_copy, manifest)
    with pytest.raises(ModelBundleError, match="class scores"):
        create_backend(load_bundle(bundle_copy), "onnxruntime")


def test_manifest_input_size_the_model_does_not_take_is_refused(bundle_copy):
    from edge_agent.runtime.backends import create_backend
    from edge_agent.runtime.bundle import write_manifest

    bundle = load_bundle(bundle_copy)
    spec = bundle.manifest.input.model_copy(update={"size": (48, 48)})
    write_manifest(bundle_copy, bundle.manifest.model_copy(update={"input": spec}))
    with pytest.raises(ModelBundleError, match="does not take"):
        create_backend(load_bundle(bundle_copy), "onnxruntime")


def test_a_symlink_that_leads_out_of_the_bundle_is_refused(bundle_copy, tmp_path):
    outside = tmp_path / "elsewhere.onnx"
    (bundle_copy / "model.onnx").rename(outside)
    (bundle_copy / "model.onnx").symlink_to(outside)
    with pytest.raises(ModelBundleError, match="outside the bundle"):
        load_bundle(bundle_copy)


def test_a_manifest_naming_an_absolute_path_is_refused_by_the_cli_with_exit_2(bundle_copy, tiny_data, capsys):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    outside = bundle_copy.parent / "outside.onnx"
    shutil.copy(bundle_copy / "model.onnx", outside)
    manifest["files"][str(outside)] = manifest["files"].pop("model.onnx")
    manifest["model_file"] = str(outside)
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    image = next((tiny_data / "test" / "good").glob("*.png"))
    assert main(["predict", str(bundle_copy), str(image)]) == 2
    assert "not inside the bundle" in capsys.readouterr().err


def test_manifest_writes_are_atomic(bundle_copy, monkeypatch):
    """A crash in the middle of writing leaves the old manifest whole (the write goes to a temp file)."""
    from edge_agent.runtime import bundle as bundle_module

    manifest = load_bundle(bundle_copy).manifest
    before = (bundle_copy / "manifest.json").read_bytes()

    def crash(*_args, **_kwargs):
        raise OSError("power cut")

    monkeypatch.setattr("edge_agent.fsutil.os.replace", crash)
    manifest.name = "changed"
    with pytest.raises(OSError, match="power cut"):
        bundle_module.write_manifest(bundle_copy, manifest)
    assert (bundle_copy / "manifest.json").read_bytes() == before
    assert [p.name for p in bundle_copy.iterdir() if p.name.startswith(".")] == [], "temp file cleaned up"
