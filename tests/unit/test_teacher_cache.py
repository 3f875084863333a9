import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from edge_agent.runtime.manifest import InputSpec  # noqa: E402
from edge_agent.trainer.batches import unlabeled_rows  # noqa: E402
from edge_agent.trainer.fit import FitConfig, fit  # noqa: E402
from edge_agent.trainer.teacher_cache import compute_teacher_views  # noqa: E402
from edge_agent.trainer.tensors import (  # noqa: E402
    ImageSet,
    Normalizer,
    apply_augment,
    augment,
    sample_augment,
    to_unit,
)

SPEC = InputSpec(size=(16, 16), color="RGB", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), resize="stretch")


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 16, 16, 3), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


class CountingTeacher(nn.Module):
    """A fixed, deterministic 'teacher' that counts how often it runs."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, classes))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.net(x)


def test_augment_is_its_parameters_applied():
    batch = to_unit(_images(8))
    drawn = augment(batch, torch.Generator().manual_seed(5))
    params = sample_augment(8, torch.Generator().manual_seed(5))
    assert torch.equal(drawn, apply_augment(batch, params))
    assert not torch.equal(drawn, batch)


def test_cached_logits_are_the_teachers_output_on_the_rebuilt_view():
    norm = Normalizer(SPEC, torch.device("cpu"))
    teacher, images = CountingTeacher().eval(), _images(10)
    views = compute_teacher_views(teacher, images, norm, views=3, seed=0, batch_size=4)
    assert views.params.shape == (3, 10, 6)
    assert views.logits.shape == (3, 10, 3)
    index = torch.tensor([0, 4, 9, 4])
    params, logits = views.pick(index, torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = teacher(norm.unit(apply_augment(to_unit(images[index]), params)))
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


def test_views_differ_and_are_deterministic_by_seed():
    norm = Normalizer(SPEC, torch.device("cpu"))
    teacher, images = CountingTeacher().eval(), _images(6)
    a = compute_teacher_views(teacher, images, norm, views=2, seed=4)
    b = compute_teacher_views(teacher, images, norm, views=2, seed=4)
    assert torch.equal(a.logits, b.logits)
    assert not torch.equal(a.params[0], a.params[1])


def test_a_student_trained_from_the_cache_never_runs_the_teacher():
    norm = Normalizer(SPEC, torch.device("cpu"))
    train = ImageSet(_images(12), torch.arange(12) % 3, [], [])
    val = ImageSet(_images(6, seed=1), torch.arange(6) % 3, [], [])
    unlabeled = ImageSet(_images(4, seed=2), torch.full((4,), -1), [], [])
    teacher = CountingTeacher()
    views = compute_teacher_views(teacher, torch.cat([train.images, unlabeled.images]), norm, views=2, seed=0)
    teacher.calls = 0
    student = CountingTeacher()
    cfg = FitConfig(epochs=2, batch_size=4, tau=2.0, lam=1.0, progress=False)
    result = fit(student, train, val, norm, cfg, teacher=teacher, unlabeled=unlabeled, teacher_views=views)
    assert teacher.calls == 0
    assert len(result.history) == 2
    assert result.history[-1]["kd_loss"] > 0


def test_a_cache_for_other_images_is_refused():
    norm = Normalizer(SPEC, torch.device("cpu"))
    train = ImageSet(_images(12), torch.arange(12) % 3, [], [])
    teacher = CountingTeacher()
    views = compute_teacher_views(teacher, train.images[:8], norm, views=1, seed=0)
    cfg = FitConfig(epochs=1, batch_size=4, lam=1.0, progress=False)
    with pytest.raises(ValueError, match="cover 8 images"):
        fit(CountingTeacher(), train, train, norm, cfg, teacher=teacher, teacher_views=views)


def test_unlabelled_rows_use_every_image_once_before_any_repeats():
    # 10 unlabelled rows after 100 labelled ones, 4 per step, 3 steps an epoch: the stream runs across
    # step and epoch boundaries and starts a fresh permutation only after all ten were used.
    drawn = torch.cat(
        [unlabeled_rows(100, 10, epoch, step, 3, take=4, seed=0) for epoch in (1, 2) for step in range(3)]
    )
    assert len(drawn) == 24
    assert sorted(drawn[:10].tolist()) == list(range(100, 110))
    assert sorted(drawn[10:20].tolist()) == list(range(100, 110))
    assert not torch.equal(drawn[:10], drawn[10:20])  # a new order each sweep
    # Pure in (epoch, step): what a resumed run draws for epoch 2 is what the first run drew.
    assert torch.equal(unlabeled_rows(100, 10, 2, 1, 3, take=4, seed=0), drawn[16:20])


def test_a_batch_can_take_more_unlabelled_rows_than_there_are():
    rows = unlabeled_rows(5, 3, 1, 0, 1, take=7, seed=1)
    assert len(rows) == 7
    assert set(rows.tolist()) == {5, 6, 7}
    assert len(unlabeled_rows(5, 0, 1, 0, 1, take=7, seed=1)) == 0


class BatchSizes(CountingTeacher):
    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.sizes.append(len(x))
        return super().forward(x)


@pytest.mark.parametrize("extra", [4, 40])
def test_an_epoch_costs_the_same_however_many_unlabelled_images(extra):
    norm = Normalizer(SPEC, torch.device("cpu"))
    train = ImageSet(_images(12), torch.arange(12) % 3, [], [])
    unlabeled = ImageSet(_images(extra, seed=2), torch.full((extra,), -1), [], [])
    student = BatchSizes()
    cfg = FitConfig(epochs=2, batch_size=4, lam=1.0, unlabeled_ratio=0.5, progress=False)
    fit(student, train, train, norm, cfg, teacher=CountingTeacher(), unlabeled=unlabeled)
    assert student.sizes == [4 + 2] * 6  # 3 steps an epoch over the 12 labelled images, 2 unlabelled each


def _views_on_rank(rank: int, world: int, store: str, out: str) -> None:
    """One process of a gloo group: cache the views and save what this rank ran and got."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    teacher, rows = CountingTeacher(), []
    teacher.register_forward_hook(lambda _m, args, _o: rows.append(len(args[0])))
    views = compute_teacher_views(teacher, _images(9), Normalizer(SPEC, torch.device("cpu")), 3, seed=5, batch_size=2)
    torch.save({"rows": sum(rows), "params": views.params, "logits": views.logits}, f"{out}-{rank}.pt")
    dist.destroy_process_group()


def test_under_torchrun_each_process_runs_the_teacher_on_its_share_and_all_get_every_view(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_views_on_rank, args=(2, str(tmp_path / "store"), str(tmp_path / "views")), nprocs=2)
    alone = compute_teacher_views(CountingTeacher(), _images(9), Normalizer(SPEC, torch.device("cpu")), 3, seed=5)
    ranks = [torch.load(tmp_path / f"views-{rank}.pt") for rank in (0, 1)]
    assert [r["rows"] for r in ranks] == [3 * 5, 3 * 4]  # 9 images, 3 views: rows 0, 2, 4, ... and 1, 3, ...
    for got in ranks:
        assert torch.equal(got["params"], alone.params)
        assert torch.allclose(got["logits"], alone.logits, atol=1e-5)
