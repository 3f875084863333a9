import urllib.error
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from edge_agent.errors import BadInputError  # noqa: E402
from edge_agent.trainer.models import count_params, create_model, feature_channels  # noqa: E402


def test_any_torchvision_classifier_by_name_with_our_head():
    for arch in ("resnet18", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"):
        model = create_model(arch, 5)
        with torch.no_grad():
            assert model.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 5)


def test_default_student_is_five_times_smaller_than_default_teacher():
    from edge_agent.trainer.distill import DistillOptions

    defaults = DistillOptions(data=Path("d"), out=Path("o"))
    teacher, student = create_model(defaults.teacher_arch, 5), create_model(defaults.student_arch, 5)
    assert count_params(teacher) >= 5 * count_params(student)


def test_unknown_architecture_is_bad_input():
    with pytest.raises(BadInputError, match="unknown architecture"):
        create_model("resnet5000", 5)


def test_pretrained_offline_says_where_to_place_the_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(BadInputError, match=r"download https://download\.pytorch\.org/.*resnet18.* place it as"):
        create_model("resnet18", 5, pretrained=True)


def test_feature_channels_of_the_hint_stage():
    assert feature_channels(create_model("resnet18", 5), 32) == 512
    assert feature_channels(create_model("mobilenet_v3_small", 5), 32) == 576
    assert feature_channels(create_model("mobilenet_v3_large", 5), 32) == 960


def test_the_default_student_is_at_least_ten_times_smaller_than_the_default_teacher():
    """The product's promise: a small student. Measured on real photographs (docs/benchmarks.md), the
    default MobileNetV3-Small takes 2 points over itself alone from a ResNet-18 teacher at 12 epochs."""
    from edge_agent.cli import build_parser
    from edge_agent.trainer_options import options_from

    options = options_from(build_parser().parse_args(["trainer", "distill", "d", "--out", "o"]))
    student = count_params(create_model(options.student_arch, 5))
    teacher = count_params(create_model(options.teacher_arch, 5))
    assert student * 10 <= teacher
    assert student <= 2_300_000
