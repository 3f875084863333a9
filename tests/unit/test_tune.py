import numpy as np
import pytest

pytest.importorskip("torch")

from edge_agent.runtime.metrics import escape_at_overkill
from edge_agent.trainer.paired import Gap
from edge_agent.trainer.tune import (
    DEFAULT,
    FINALISTS,
    REFERENCE,
    Scored,
    anchor_of,
    challengers,
    clearly_better,
    decide,
    rung_epochs,
)


def test_the_race_is_between_distilled_challengers_only():
    # λ = 0 and the recipe asked for are always finalists; the short runs race the rest.
    racing = challengers(anchor_of(3.0, 0.7))
    assert anchor_of(3.0, 0.7) == (3.0, 0.7)
    assert REFERENCE not in racing
    assert (3.0, 0.7) not in racing
    assert all(lam > 0 for _, lam in racing)
    assert len(racing) == len(set(racing))
    assert DEFAULT not in challengers(DEFAULT)
    assert anchor_of(2.0, 0.0) == DEFAULT  # --lam 0 --tune still tries the default recipe


def test_rungs_grow_and_stay_within_budget():
    n = len(challengers(DEFAULT))
    epochs = rung_epochs(n, full_epochs=90, budget=4.0)
    assert epochs == sorted(epochs)
    assert epochs[-1] == 90  # the finalists train for the full budget; the winner ships as it is
    survivors = [n, -(-n // 3)]
    spent = sum(c * e for c, e in zip(survivors, epochs, strict=False)) + FINALISTS * 90
    assert spent <= 4.0 * 90


def test_escape_at_overkill():
    is_defect = np.array([True, True, True, False, False, False, False])
    scores = np.array([0.9, 0.6, 0.2, 0.1, 0.3, 0.5, 0.7])
    # At most 1 of 4 good parts may fail: a threshold in (0.5, 0.6] fails 0.6, 0.7, 0.9 and lets 0.2 escape.
    assert escape_at_overkill(is_defect, scores, 0.25) == pytest.approx(1 / 3)
    assert escape_at_overkill(is_defect, scores, 1.0) == 0.0
    # No good part may fail: only what scores above the best-looking good part (0.7) is caught.
    assert escape_at_overkill(is_defect, scores, 0.0) == pytest.approx(2 / 3)


def test_a_paired_gap_counts_only_beyond_its_sampling_error():
    a = np.array([True] * 90 + [False] * 10)
    b = a.copy()
    b[:1] = False  # one image apart: never clear
    assert not Gap.of(a, b).clearly_up
    b[:2] = False  # two images, both one way: a coin flipped twice, still not clear
    assert not Gap.of(a, b).clearly_up
    b[:3] = False
    assert Gap.of(a, b).clearly_up
    b[:16] = False  # 16 images apart, all one way: beyond √16 = 4 images
    assert Gap.of(a, b).clearly_up
    assert Gap.of(b, a).clearly_down
    c = a.copy()
    c[:16] = False
    c[90:96] = True  # 16 lost, 6 gained: 10 net against √22 ≈ 4.7 — still clear
    assert Gap.of(a, c).clearly_up
    d = a.copy()
    d[:10] = False
    d[90:97] = True  # 10 lost, 7 gained: 3 net against √17 ≈ 4.1 — noise
    assert not Gap.of(a, d).clearly_up
    assert not Gap.of(a, d).clearly_down


def _scored(tau: float, lam: float, correct: list[bool], caught: list[bool]) -> Scored:
    right, hit = np.array(correct), np.array(caught)
    row = {"tau": tau, "lam": lam, "val_accuracy": right.mean(), "val_escape": 1 - hit.mean()}
    return Scored(row, right, hit)


N = 100  # validation images, the first 80 of them defective


def _model(tau: float, lam: float, wrong: range = range(0), escaped: range = range(0)) -> Scored:
    correct = [i not in wrong for i in range(N)]
    caught = [i not in escaped for i in range(80)]
    return _scored(tau, lam, correct, caught)


GOOD_TEACHER = np.ones(N, dtype=bool)
USELESS_TEACHER = np.arange(N) < 30


def test_a_credible_teacher_is_used_unless_distillation_is_clearly_worse():
    alone = _model(*REFERENCE, wrong=range(0, 10), escaped=range(0, 4))
    within_noise = _model(*DEFAULT, wrong=range(5, 17), escaped=range(2, 6))
    winner, why = decide(alone, within_noise, None, GOOD_TEACHER)
    assert winner is within_noise
    assert "not clearly worse than the student alone" in why
    assert "NOTE" in why
    assert "accuracy (within the sampling error)" in why
    clearly_worse = _model(*DEFAULT, wrong=range(0, 30), escaped=range(0, 20))
    winner, why = decide(alone, clearly_worse, None, GOOD_TEACHER)
    assert winner is alone
    assert why.startswith("λ = 0 won")


def test_a_teacher_less_accurate_than_the_student_must_clearly_win():
    alone = _model(*REFERENCE, wrong=range(0, 10), escaped=range(0, 4))
    tie = _model(*DEFAULT, wrong=range(0, 10), escaped=range(0, 4))
    winner, why = decide(alone, tie, None, USELESS_TEACHER)
    assert winner is alone
    assert why.startswith("λ = 0 won")
    assert "less accurate" in why
    better = _model(*DEFAULT, escaped=range(0, 0))
    better_alone = _model(*REFERENCE, wrong=range(0, 20), escaped=range(0, 20))
    assert decide(better_alone, better, None, USELESS_TEACHER)[0] is better


def test_a_teacher_less_accurate_than_the_student_needs_more_than_one_sampling_error():
    """CI saw it: a teacher trained on shuffled labels, and a distilled student 3 images of 180 ahead of the
    student alone (one sampling error) on validation; with a teacher known to be worse, that is chance."""
    alone = _model(*REFERENCE, wrong=range(0, 3))
    by_one_error = _model(*DEFAULT)  # 3 images more right: exactly the smallest gap that counts
    assert clearly_better(by_one_error, alone)
    winner, why = decide(alone, by_one_error, None, USELESS_TEACHER)
    assert winner is alone
    assert why.startswith("λ = 0 won")
    assert "twice" in why


def test_a_challenger_replaces_the_recipe_asked_for_only_when_clearly_better():
    alone = _model(*REFERENCE, wrong=range(0, 10), escaped=range(0, 8))
    anchor = _model(*DEFAULT, wrong=range(0, 10), escaped=range(0, 8))
    slightly = _model(2.0, 2.0, wrong=range(0, 9), escaped=range(0, 7))
    assert decide(alone, anchor, slightly, GOOD_TEACHER)[0] is anchor
    clearly = _model(2.0, 2.0, wrong=range(0, 2), escaped=range(0, 0))
    winner, why = decide(alone, anchor, clearly, GOOD_TEACHER)
    assert winner is clearly
    assert "beat the recipe asked for" in why
    assert "clearly better than the student alone" in why


def test_fewer_escapes_do_not_excuse_a_clearly_worse_classifier():
    alone = _model(*REFERENCE, wrong=range(0, 10), escaped=range(0, 10))
    lucky = _model(*DEFAULT, wrong=range(0, 40), escaped=range(0, 2))
    assert not clearly_better(lucky, alone)
    assert not clearly_better(alone, lucky)


def test_fit_keeps_the_tail_of_validation_predictions_across_resume(tmp_path):
    import torch
    from torch import nn

    from edge_agent.runtime.manifest import InputSpec
    from edge_agent.trainer.fit import FitConfig, fit
    from edge_agent.trainer.tensors import ImageSet, Normalizer

    spec = InputSpec(size=(8, 8), color="RGB", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), resize="stretch")
    norm = Normalizer(spec, torch.device("cpu"))
    images = torch.randint(0, 256, (12, 8, 8, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    data = ImageSet(images, torch.arange(12) % 3, [], [])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    cfg = FitConfig(epochs=3, batch_size=4, progress=False, keep_val_probs=2)
    result = fit(model, data, data, norm, cfg, checkpoint=tmp_path / "last.pt")
    assert len(result.val_probs) == 2
    assert result.val_probs[0].shape == (12, 3)
    assert not np.allclose(result.val_probs[0], result.val_probs[1])  # two epochs, two sets of predictions
    # A finished run resumed (--resume after Ctrl-C elsewhere in --tune) still has them.
    resumed = fit(model, data, data, norm, cfg, checkpoint=tmp_path / "last.pt", resume=True)
    assert len(resumed.val_probs) == 2
    assert np.array_equal(resumed.val_probs[1], result.val_probs[1])


def test_a_shipped_student_clearly_less_accurate_on_validation_says_so():
    alone = _model(*REFERENCE, wrong=range(0, 10), escaped=range(0, 10))
    fewer_escapes = _model(*DEFAULT, wrong=range(0, 40), escaped=range(0, 2))
    winner, why = decide(alone, fewer_escapes, None, GOOD_TEACHER)
    assert winner is fewer_escapes  # escape comes first; neither is clearly better overall
    assert "accuracy (beyond the sampling error)" in why


def test_the_whole_race_with_a_fake_trainer():
    """tune_tau_lambda receives the training callable: the race runs without training anything."""
    from types import SimpleNamespace

    import torch

    from edge_agent.trainer.fit import FitResult
    from edge_agent.trainer.tune import tune_tau_lambda

    labels = torch.tensor([0] * 20 + [1] * 20)  # class 0 is good
    n = len(labels)

    class Fixed(torch.nn.Module):
        """A teacher that is right on every image."""

        def forward(self, x):
            logits = torch.zeros(len(x), 2)
            logits[torch.arange(len(x)), labels[: len(x)]] = 5.0
            return logits

    def probs_right_on(k: int) -> np.ndarray:
        """Right on the first k images of each class, confidently wrong on the rest."""
        out = np.zeros((n, 2))
        for i, label in enumerate(labels.tolist()):
            right = (i % 20) < k
            out[i, label if right else 1 - label] = 0.95
            out[i, 1 - label if right else label] = 0.05
        return out

    calls = []

    def train(tau, lam, label, epochs, keep):
        calls.append((tau, lam, epochs))
        skill = 19 if (tau, lam) == (2.0, 0.5) else 16 if lam > 0 else 10  # one challenger stands out
        return torch.nn.Identity(), FitResult(torch.nn.Identity(), val_probs=[probs_right_on(skill)] * max(1, keep))

    opts = SimpleNamespace(tau=4.0, lam=1.0, epochs=12, tune_budget=4, target_overkill=0.1)
    prep = SimpleNamespace(
        val=SimpleNamespace(images=torch.zeros(n, 3, 4, 4), labels=labels),
        splits=SimpleNamespace(good_index=0),
        norm=lambda x: x,
    )
    tuned = tune_tau_lambda(train, opts, prep, Fixed())
    assert tuned.report["winner"] == {"tau": 2.0, "lam": 0.5}
    assert "clearly better" in tuned.report["why"]
    full = [c for c in calls if c[2] == 12]
    assert (1.0, 0.0, 12) in full  # the student alone always trains for the full budget
    assert (4.0, 1.0, 12) in full  # and the recipe asked for
    assert len(full) == FINALISTS
    assert any(c[2] < 12 for c in calls), "short runs race first"
