"""The pictures an engineer checks before trusting a threshold: which parts escaped, which good parts were
failed (contact sheets, with their scores), where each class's scores fall against the threshold, the
confusion matrices, escape against overkill, and the training curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SHEET_MAX = 24  # images per contact sheet: the worst ones first


def mistakes(ev: dict[str, Any], paths: list[Path], root: Path, threshold: float) -> dict[str, list[dict[str, Any]]]:
    """Escaped defects (lowest score first: the most confidently passed) and over-killed good parts (highest
    score first), with paths relative to the data root."""
    scores = np.asarray(ev["defect_scores"], dtype=float)
    is_defect = np.asarray(ev["is_defect"], dtype=bool)
    labels = np.asarray(ev["labels"])
    classes = ev["classes"]

    def rows(mask: np.ndarray, descending: bool) -> list[dict[str, Any]]:
        order = np.argsort(-scores if descending else scores, kind="stable")
        return [
            {
                "path": relative(paths[i], root),
                "label": classes[int(labels[i])],
                "defect_score": round(float(scores[i]), 4),
            }
            for i in order
            if mask[i]
        ]

    return {
        "escaped": rows(is_defect & (scores < threshold), descending=False),
        "overkill": rows(~is_defect & (scores >= threshold), descending=True),
    }


def relative(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return Path(path).name  # outside the data root (an --unlabeled folder): the name alone


def contact_sheet(path: Path, rows: list[dict[str, Any]], root: Path, title: str) -> bool:
    """A grid of the images in `rows` (paths relative to `root`), each captioned with its class and score.
    Returns False (and writes nothing) when there is nothing to show."""
    if not rows:
        return False
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = rows[:SHEET_MAX]
    cols = min(6, len(shown))
    lines = (len(shown) + cols - 1) // cols
    fig, axes = plt.subplots(lines, cols, figsize=(2.1 * cols, 2.4 * lines + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, row in zip(axes.ravel(), shown, strict=False):
        image = cv2.imread(str(root / row["path"]), cv2.IMREAD_COLOR)
        if image is not None:
            ax.imshow(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        ax.set_title(f"{row['label']}  {row['defect_score']:.3f}\n{Path(row['path']).name}", fontsize=7)
    more = f" (the {len(shown)} worst of {len(rows)})" if len(rows) > len(shown) else ""
    fig.suptitle(title + more, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def score_histograms(path: Path, ev: dict[str, Any], threshold: float, good_class: str) -> None:
    """One histogram of defect scores per true class, the threshold drawn across all: good parts right of it
    are overkill, defects left of it escape."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = np.asarray(ev["defect_scores"], dtype=float)
    labels = np.asarray(ev["labels"])
    classes = ev["classes"]
    fig, axes = plt.subplots(len(classes), 1, figsize=(6, 1.3 * len(classes) + 0.6), sharex=True, squeeze=False)
    bins = np.linspace(0, 1, 41)
    for ax, (index, name) in zip(axes[:, 0], enumerate(classes), strict=True):
        ax.hist(scores[labels == index], bins=bins, color="C2" if name == good_class else "C3")
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1)
        ax.set_ylabel(name, rotation=0, ha="right", fontsize=8)
    axes[-1, 0].set_xlabel(f"defect score 1 − p({good_class}); dashed: threshold {threshold:.3f}")
    fig.suptitle("test scores by true class (fail at or right of the threshold)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusions(path: Path, evaluations: dict[str, dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(evaluations)
    moved = "student" in evaluations and "baseline" in evaluations
    panels = len(names) + int(moved)
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 4.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=False):
        ev = evaluations[name]
        matrix = np.asarray(ev["confusion"], dtype=float)
        rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
        _annotate(ax, ev["classes"], matrix.astype(int), rows > 0.6)
        ax.set_title(f"{name}: acc {ev['accuracy']:.1%}, escape {ev['escape_rate']:.1%}")
    if moved:
        # Where distillation moved errors: student − baseline counts. Red = worse (more off-diagonal
        # mistakes, fewer correct), green = better; the number is the signed change in images.
        diff = np.asarray(evaluations["student"]["confusion"]) - np.asarray(evaluations["baseline"]["confusion"])
        harm = np.where(np.eye(len(diff), dtype=bool), -diff, diff).astype(float)
        limit = max(1.0, float(np.abs(harm).max()))
        ax = axes[0][-1]
        ax.imshow(harm, cmap="RdYlGn_r", vmin=-limit, vmax=limit)
        _annotate(ax, evaluations["student"]["classes"], diff, np.zeros_like(harm, dtype=bool), signed=True)
        ax.set_title("student − baseline (green = better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _annotate(ax: Any, classes: list[str], counts: np.ndarray, dark: np.ndarray, signed: bool = False) -> None:
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for i in range(len(classes)):
        for j in range(len(classes)):
            value = int(counts[i, j])
            text = (f"{value:+d}" if value else "0") if signed else str(value)
            ax.text(j, i, text, ha="center", va="center", color="white" if dark[i, j] else "black", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")


def plot_tradeoff(path: Path, evaluations: dict[str, dict[str, Any]]) -> None:
    """Escape against overkill on test for every model as its threshold sweeps, each calibrated operating
    point marked: two students calibrated to the same validation escape can sit far apart on this plot,
    and the lower curve is the better model at every cost in good parts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    top = 0.05
    for index, (name, ev) in enumerate(evaluations.items()):
        overkill, escape = tradeoff_curve(ev["is_defect"], ev["defect_scores"])
        ax.step(overkill, escape, where="post", color=f"C{index}", label=name)
        ax.plot(ev["overkill_rate"], ev["escape_rate"], "o", color=f"C{index}")
        top = max(top, float(escape[overkill == 0].min()))  # escape before any good part fails
    ax.set_xlabel("overkill (good parts failed)")
    ax.set_ylabel("escape (defective parts passed)")
    ax.set_title("test trade-off; dots = calibrated thresholds")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, min(1.0, 1.1 * top))  # the region where thresholds live, not the empty top
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tradeoff_curve(is_defect: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(overkill, escape) at every threshold, from failing nothing to failing everything."""
    order = np.argsort(-scores, kind="stable")  # lowering the threshold fails parts in this order
    ranked, defect = np.asarray(scores)[order], np.asarray(is_defect, dtype=bool)[order]
    n_defect, n_good = max(1, int(defect.sum())), max(1, int((~defect).sum()))
    # A threshold cannot split equal scores: keep only the points after the last of each tie.
    ends = np.append(ranked[1:] != ranked[:-1], True)
    overkill = np.concatenate([[0.0], (np.cumsum(~defect) / n_good)[ends]])
    escape = np.concatenate([[1.0], (1 - np.cumsum(defect) / n_defect)[ends]])
    return overkill, escape


def plot_curves(path: Path, histories: dict[str, list[dict[str, float]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for index, (name, history) in enumerate(histories.items()):
        if not history:
            continue
        color = f"C{index}"  # one colour per model: solid = validation, dotted = training
        epochs = [h["epoch"] for h in history]
        loss_ax.plot(epochs, [h["loss"] for h in history], ":", color=color, label=f"{name} train (total)")
        loss_ax.plot(epochs, [h["val_loss"] for h in history], color=color, label=f"{name} val (CE)")
        acc_ax.plot(epochs, [h["val_accuracy"] for h in history], color=color, label=f"{name} val")
        acc_ax.plot(epochs, [h["train_accuracy"] for h in history], ":", color=color, label=f"{name} train")
    loss_ax.set_title("loss")
    acc_ax.set_title("accuracy")
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
