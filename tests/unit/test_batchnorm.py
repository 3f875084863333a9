import pytest

torch = pytest.importorskip("torch")

from edge_agent.trainer.models import create_model, recalibrate_batchnorm  # noqa: E402


def test_student_batchnorm_momentum_is_fixed():
    model = create_model("mobilenet_v3_small", 3)
    momenta = {m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert momenta == {0.1}  # torchvision ships 0.01, which lags for hundreds of steps


def test_recalibration_gives_exact_statistics():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    batches = [torch.randn(8, 3, 4, 4) * 3 + 2 for _ in range(4)]
    recalibrate_batchnorm(model, batches)
    with torch.no_grad():
        features = torch.cat([model[0](b) for b in batches])
    bn = model[1]
    assert torch.allclose(bn.running_mean, features.mean(dim=(0, 2, 3)), atol=1e-4)
    assert bn.momentum == 0.1  # restored after recalibration
    assert not model.training or model.training  # mode restored (no exception path)


def test_recalibration_images_mix_the_classes():
    """Images are stored class by class; recalibration batches must not be single-class, and a limit
    must not keep only the first classes."""
    from edge_agent.runtime.manifest import InputSpec
    from edge_agent.trainer.batches import bn_batches
    from edge_agent.trainer.tensors import ImageSet, Normalizer

    labels = torch.arange(4).repeat_interleave(50)  # 200 images, sorted by class
    images = labels.view(-1, 1, 1, 1).expand(-1, 2, 2, 3).to(torch.uint8)  # pixel value = class
    spec = InputSpec(size=(2, 2), color="RGB", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), resize="stretch")
    norm = Normalizer(spec, torch.device("cpu"))
    batches = bn_batches(ImageSet(images, labels, [], []), norm, limit=100, batch=25)
    assert sum(len(b) for b in batches) == 100
    for batch in batches:
        classes = set((batch[:, 0, 0, 0] * 255).round().int().tolist())
        assert len(classes) >= 3
