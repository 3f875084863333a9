"""The pictures an engineer checks before trusting a threshold: which parts escaped, which good parts were
failed (contact sheets, with their scores), and where each class's scores fall against the threshold."""

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
