"""Classification metrics from a confusion matrix, fold aggregation, and their plots / CSVs.

Definitions (per class ``k`` of the confusion matrix ``cm[true, predicted]``):

* precision_k = cm[k, k] / sum_i cm[i, k]   (0 when class ``k`` is never predicted)
* recall_k    = cm[k, k] / sum_j cm[k, j]   (0 when class ``k`` has no test clips)
* F1_k        = 2 P_k R_k / (P_k + R_k)     (0 when both are 0)
* accuracy    = trace(cm) / sum(cm)
* macro-F1    = mean of F1_k over classes that occur in the test set or are predicted
  (scikit-learn's ``f1_score(average="macro")`` over the labels present)

Fold aggregation reports the mean and the population standard deviation (``ddof=0``).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wb.errors import WbError
from wb.runs import atomic_write, atomic_write_text


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Counts ``cm[true, predicted]`` as int64 ``(n_classes, n_classes)``.

    Raises:
        WbError: lengths differ or a label is outside ``0..n_classes-1``.
    """
    t = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise WbError(f"confusion matrix: {t.size} true labels but {p.size} predictions")
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= n_classes):
        raise WbError(f"confusion matrix: label outside 0..{n_classes - 1}")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def scores(cm: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class precision / recall / F1 / support from ``cm``.

    Args:
        cm: confusion matrix ``(n_classes, n_classes)``, rows = true class.

    Returns:
        ``{"accuracy", "macro_f1", "precision": [...], "recall": [...], "f1": [...],
        "support": [...]}`` (lists in class order; plain Python numbers).
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    present = (support > 0) | (predicted > 0)
    total = cm.sum()
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": [int(s) for s in support],
    }


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (``ddof=0``); ``(0, 0)`` for no values."""
    if not len(values):
        return 0.0, 0.0
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std())


def write_confusion_csv(path: str | os.PathLike, cm: np.ndarray, classes: Sequence[str]) -> Path:
    """Write ``cm`` as CSV: header ``true\\predicted, <classes>``, one row per true class."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["true\\predicted", *classes])
    for name, row in zip(classes, np.asarray(cm), strict=True):
        w.writerow([name, *[int(v) for v in row]])
    return atomic_write_text(path, buf.getvalue())


def confusion_figure(cm: np.ndarray, classes: Sequence[str], title: str = ""):
    """A row-normalised confusion-matrix heat map (counts annotated when 20 classes or fewer)
    as a matplotlib figure; rows are true classes, columns predicted ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    n = len(classes)
    norm = _safe_div(cm.astype(np.float64), cm.sum(axis=1, keepdims=True).astype(np.float64))
    size = min(4 + 0.35 * n, 24)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ticks = np.arange(n)
    ax.set_xticks(ticks, labels=classes, rotation=90 if n > 10 else 0, fontsize=8)
    ax.set_yticks(ticks, labels=classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    color = "white" if norm[i, j] > 0.5 else "black"
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7,
                            color=color)  # fmt: skip
    ax.set_title(title or "confusion matrix")
    fig.tight_layout()
    return fig


def plot_confusion(
    path: str | os.PathLike, cm: np.ndarray, classes: Sequence[str], title: str = ""
) -> Path:
    """Save :func:`confusion_figure` as PNG."""
    import matplotlib.pyplot as plt

    fig = confusion_figure(cm, classes, title)
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return out


def curves_figure(history: list[dict[str, float]], title: str = ""):
    """Training curves as a matplotlib figure: loss and accuracy per epoch (train and
    validation), and, when both accuracies are logged, the overfitting % per epoch
    (``100 * (train_acc - val_acc)``; the training accuracy is that of the augmented batches
    in training mode, so it is a trend, not the eval-mode gap of ``details.json``).

    Args:
        history: one dict per epoch with keys among ``train_loss, val_loss, train_acc,
            val_acc`` (missing keys are skipped).
        title: figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h.get("epoch", i) for i, h in enumerate(history)]
    gap = [
        (e, 100 * (h["train_acc"] - h["val_acc"]))
        for e, h in zip(epochs, history, strict=True)
        if "train_acc" in h and "val_acc" in h
    ]
    fig, axes = plt.subplots(1, 3 if gap else 2, figsize=(15 if gap else 10, 3.8))
    for ax, metric in zip(axes, ("loss", "acc"), strict=False):
        for split in ("train", "val"):
            key = f"{split}_{metric}"
            pts = [(e, h[key]) for e, h in zip(epochs, history, strict=True) if key in h]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=split, marker=".")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy" if metric == "acc" else "loss")
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend()
    if gap:
        ax = axes[2]
        ax.plot(*zip(*gap, strict=True), marker=".", color="tab:red")
        ax.axhline(0, color="gray", lw=0.8)
        ax.set_xlabel("epoch")
        ax.set_ylabel("overfitting % (train - val accuracy)")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_curves(path: str | os.PathLike, history: list[dict[str, float]], title: str = "") -> Path:
    """Save :func:`curves_figure` as PNG."""
    import matplotlib.pyplot as plt

    fig = curves_figure(history, title)
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return out
