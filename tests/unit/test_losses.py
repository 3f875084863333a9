import math

import pytest

torch = pytest.importorskip("torch")

from edge_agent.trainer.losses import DistillationLoss, FeatureHintLoss, decoupled_kd  # noqa: E402


def reference_kd(student, teacher, tau):
    """KL(p_t || p_s) at temperature tau, written out element by element, averaged over the batch."""
    total = 0.0
    for s_row, t_row in zip(student.tolist(), teacher.tolist(), strict=True):
        s_exp = [math.exp(v / tau) for v in s_row]
        t_exp = [math.exp(v / tau) for v in t_row]
        p_s = [v / sum(s_exp) for v in s_exp]
        p_t = [v / sum(t_exp) for v in t_exp]
        total += sum(pt * (math.log(pt) - math.log(ps)) for pt, ps in zip(p_t, p_s, strict=True))
    return tau**2 * total / len(student)


def reference_ce(student, targets):
    total = 0.0
    for row, y in zip(student.tolist(), targets.tolist(), strict=True):
        total += -(row[y] - math.log(sum(math.exp(v) for v in row)))
    return total / len(student)


@pytest.mark.parametrize(("tau", "lam"), [(1.0, 1.0), (4.0, 0.5), (2.0, 0.0), (8.0, 2.0)])
def test_distillation_loss_matches_independent_computation(tau, lam):
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(6, 5, generator=gen) * 3
    teacher = torch.randn(6, 5, generator=gen) * 3
    targets = torch.tensor([0, 1, 2, 3, 4, 0])
    parts = DistillationLoss(tau, lam)(student, teacher, targets)
    expected_kd = reference_kd(student, teacher, tau) if lam else 0.0
    expected_ce = reference_ce(student, targets)
    assert parts["kd_loss"].item() == pytest.approx(expected_kd, rel=1e-5, abs=1e-6)
    assert parts["task_loss"].item() == pytest.approx(expected_ce, rel=1e-5)
    assert parts["loss"].item() == pytest.approx(expected_ce + lam * expected_kd, rel=1e-5)


def test_kd_term_scales_with_tau_squared_and_is_batch_mean():
    student = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.2, 0.1]])
    teacher = torch.tensor([[0.0, 2.0, 0.0], [3.0, 0.0, 0.0]])
    targets = torch.tensor([1, 0])
    one = DistillationLoss(2.0, 1.0)(student, teacher, targets)["kd_loss"]
    first_only = DistillationLoss(2.0, 1.0)(student[:1], teacher[:1], targets[:1])["kd_loss"]
    second_only = DistillationLoss(2.0, 1.0)(student[1:], teacher[1:], targets[1:])["kd_loss"]
    assert one.item() == pytest.approx((first_only.item() + second_only.item()) / 2, rel=1e-6)
    assert one.item() == pytest.approx(reference_kd(student, teacher, 2.0), rel=1e-5)


def test_unlabelled_rows_feed_only_the_kd_term():
    student = torch.randn(4, 3)
    teacher = torch.randn(4, 3)
    targets = torch.tensor([0, -1, 2, -1])
    parts = DistillationLoss(2.0, 1.0)(student, teacher, targets)
    labelled = torch.tensor([True, False, True, False])
    assert parts["task_loss"].item() == pytest.approx(reference_ce(student[labelled], targets[labelled]), rel=1e-5)
    assert parts["kd_loss"].item() == pytest.approx(reference_kd(student, teacher, 2.0), rel=1e-5)


def test_identical_logits_give_zero_kd_and_gradients_flow_only_to_student():
    logits = torch.randn(3, 4, requires_grad=True)
    teacher = logits.detach().clone().requires_grad_(True)
    parts = DistillationLoss(3.0, 1.0)(logits, teacher, torch.tensor([0, 1, 2]))
    assert parts["kd_loss"].item() == pytest.approx(0.0, abs=1e-6)
    parts["loss"].backward()
    assert logits.grad is not None
    assert teacher.grad is None


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="tau"):
        DistillationLoss(0.0, 1.0)
    with pytest.raises(ValueError, match="lam"):
        DistillationLoss(1.0, -1.0)


def test_feature_hint_adapts_channels_and_size():
    hint = FeatureHintLoss(8, 16)
    loss = hint(torch.randn(2, 8, 4, 4), torch.randn(2, 16, 2, 2))
    assert loss.ndim == 0
    assert loss.item() > 0


def test_mixup_pairs_off_and_on():
    from edge_agent.trainer.batches import mixup_pairs

    assert mixup_pairs(8, 0.0, torch.Generator().manual_seed(0)) == (1.0, None)
    first = mixup_pairs(8, 0.4, torch.Generator().manual_seed(3))
    again = mixup_pairs(8, 0.4, torch.Generator().manual_seed(3))
    assert first[0] == again[0]
    assert torch.equal(first[1], again[1])  # deterministic per seed
    assert 0.0 <= first[0] <= 1.0
    assert sorted(first[1].tolist()) == list(range(8))


def test_unlabeled_rows_never_reach_the_task_loss():
    """Rows with target -1 (teacher-labelled unlabelled images) get no gradient from the task loss, only from
    the KD term; the task loss is the cross-entropy of the labelled rows alone."""
    import torch
    import torch.nn.functional as F

    from edge_agent.trainer.losses import DistillationLoss

    torch.manual_seed(0)
    student = torch.randn(6, 5, requires_grad=True)
    teacher = torch.randn(6, 5)
    targets = torch.tensor([0, 1, -1, -1, 2, 3])
    parts = DistillationLoss(tau=4.0, lam=1.0)(student, teacher, targets)
    labelled = targets >= 0
    assert torch.allclose(parts["task_loss"], F.cross_entropy(student[labelled], targets[labelled]))
    (task_grad,) = torch.autograd.grad(parts["task_loss"], student, retain_graph=True)
    assert task_grad[~labelled].abs().sum() == 0
    assert task_grad[labelled].abs().sum() > 0
    (kd_grad,) = torch.autograd.grad(parts["kd_loss"], student)
    assert kd_grad[~labelled].abs().sum() > 0, "the unlabelled rows do feed the KD term"


def test_decoupled_kd_splits_hintons_kl_into_its_true_class_and_other_class_parts():
    # Per row, KL(t ‖ s) = TCKD + (1 − p_t(true)) · NCKD (Zhao et al. 2022): weighting NCKD by that factor
    # row by row must give Hinton's term back, whatever the rows.
    torch.manual_seed(0)
    student, teacher = torch.randn(6, 5) * 3, torch.randn(6, 5) * 3
    true, tau = torch.tensor([0, 1, 2, 3, 4, 1]), 2.0
    hinton = DistillationLoss(tau, 1.0)(student, teacher, true)["kd_loss"]
    p_true = torch.softmax(teacher / tau, 1).gather(1, true[:, None]).squeeze(1)
    rebuilt = (
        sum(
            decoupled_kd(student[i : i + 1], teacher[i : i + 1], true[i : i + 1], tau, 1.0, float(1 - p_true[i]))
            for i in range(6)
        )
        / 6
    )
    assert torch.isclose(rebuilt, hinton, rtol=1e-4)
    assert float(decoupled_kd(student, teacher, true, tau, 0.0, 1.0)) > 0


def test_decoupled_kd_takes_the_teachers_top_class_for_unlabelled_rows():
    student, teacher = torch.randn(4, 5), torch.randn(4, 5)
    unlabelled = torch.full((4,), -1)
    loss = DistillationLoss(2.0, 1.0, decoupled=(1.0, 8.0))(student, teacher, unlabelled)
    expected = decoupled_kd(student, teacher, teacher.argmax(1), 2.0, 1.0, 8.0)
    assert torch.isclose(loss["kd_loss"], expected)
    assert float(loss["task_loss"]) == 0.0


def test_teacher_right_rows_drop_the_kd_term_where_the_teacher_misses_the_label():
    gen = torch.Generator().manual_seed(3)
    student = torch.randn(4, 3, generator=gen)
    teacher = torch.tensor([[3.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 3.0], [0.0, 3.0, 0.0]])
    targets = torch.tensor([0, 1, 2, -1])  # row 1: the teacher says 0, the label 1; row 3 unlabelled
    parts = DistillationLoss(2.0, 1.0, kd_rows="teacher-right")(student, teacher, targets)
    kept = [0, 2, 3]
    # Averaged over the whole batch, so a row the teacher misses is taught by its label alone.
    expected = reference_kd(student[kept], teacher[kept], 2.0) * len(kept) / len(student)
    assert parts["kd_loss"].item() == pytest.approx(expected, rel=1e-5)
    assert parts["task_loss"].item() == pytest.approx(reference_ce(student[:3], targets[:3]), rel=1e-5)


def test_unknown_kd_rows_is_refused():
    with pytest.raises(ValueError, match="kd_rows"):
        DistillationLoss(2.0, 1.0, kd_rows="some")


def test_teacher_right_rows_and_decoupled_kd_are_not_combined_silently():
    # The decoupled form has no row selection; asking for both would train one of them without saying so.
    with pytest.raises(ValueError, match="kd_rows"):
        DistillationLoss(2.0, 1.0, decoupled=(0.0, 1.0), kd_rows="teacher-right")
