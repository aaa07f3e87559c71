"""Scores and reports of classification runs: per-fold and pooled metrics
(:func:`summarize`), plots, and Markdown tables over run folders."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from classify.metrics import (
    confusion_matrix,
    mean_std,
    plot_confusion,
    plot_curves,
    scores,
    write_confusion_csv,
)
from classify.train import FoldResult
from wb.errors import WbError


def fold_slug(name: str) -> str:
    """A fold name as a file-name part (``speaker=george`` -> ``speaker_george``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "fold"


def summarize(ds, model: str, results: list[FoldResult]) -> tuple[dict, dict]:
    """``metrics.json`` (exact schema) and ``details.json`` dictionaries from fold results."""
    n = len(ds.classes)
    folds, det_folds = [], []
    total = np.zeros((n, n), dtype=np.int64)
    for r in results:
        cm = confusion_matrix(r.test_labels, np.asarray(r.test_logits).argmax(-1), n)
        total += cm
        s = scores(cm)
        folds.append({
            "fold": str(r.name), "accuracy": float(s["accuracy"]),
            "macro_f1": float(s["macro_f1"]), "n_test": int(len(r.test_labels)),
        })  # fmt: skip
        det_folds.append({
            "fold": r.name, "accuracy": s["accuracy"], "macro_f1": s["macro_f1"],
            "n_test": len(r.test_labels), "n_train": r.n_train, "n_val": r.n_val,
            "per_class": {
                c: {"precision": s["precision"][k], "recall": s["recall"][k],
                    "f1": s["f1"][k], "support": s["support"][k]}
                for k, c in enumerate(ds.classes)
            },
            "confusion": cm.tolist(), "best_epoch": r.best_epoch, "epochs_run": r.epochs_run,
            "gap_at_best_epoch": r.gap, "val_accuracy": _nan_none(r.val_accuracy),
            "seconds": r.seconds, **r.extra,
        })  # fmt: skip
    acc_m, acc_s = mean_std([f["accuracy"] for f in folds])
    f1_m, f1_s = mean_std([f["macro_f1"] for f in folds])
    metrics = {
        "dataset": str(ds.name),
        "model": str(model),
        "folds": folds,
        "mean": {"accuracy": acc_m, "macro_f1": f1_m},
        "std": {"accuracy": acc_s, "macro_f1": f1_s},
    }
    gaps = {
        k: mean_std([r.gap[k] for r in results if r.gap and not np.isnan(r.gap.get(k, np.nan))])
        for k in ("loss_gap", "acc_gap")
    }
    pooled = scores(total)
    details = {
        "dataset": ds.name, "model": model, "classes": list(ds.classes), "folds": det_folds,
        "pooled": {"accuracy": pooled["accuracy"], "macro_f1": pooled["macro_f1"],
                   "confusion": total.tolist()},
        "gap_at_best_epoch": {k: {"mean": m, "std": s} for k, (m, s) in gaps.items()},
        "std_definition": "population standard deviation over folds (ddof=0)",
    }  # fmt: skip
    return metrics, details


def write_predictions(path: str | os.PathLike, ds, results: list[FoldResult]) -> Path:
    """``predictions.csv``: one row per test clip of every fold, with columns ``fold, path,
    label, predicted, p_label, p_predicted`` (class names; softmax probabilities of the fold's
    selected model). The report's worst-misclassified clips come from it.

    Args:
        path: destination (written atomically).
        ds: the dataset (:class:`classify.datasets.base.ClipDataset`) the folds index.
        results: fold results of :func:`classify.train.train_fold`.
    """
    import csv
    import io

    from wb.runs import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["fold", "path", "label", "predicted", "p_label", "p_predicted"])
    for r in results:
        logits = np.asarray(r.test_logits, dtype=np.float64)
        logits = logits - logits.max(axis=-1, keepdims=True)
        probs = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
        for i, label, p in zip(r.test_indices, r.test_labels, probs, strict=True):
            k = int(p.argmax())
            w.writerow([r.name, str(ds.clips[i].path), ds.classes[int(label)], ds.classes[k],
                        f"{p[int(label)]:.6f}", f"{p[k]:.6f}"])  # fmt: skip
    return atomic_write_text(path, buf.getvalue())


def _nan_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)


def _write_plots(out: Path, classes: list[str], results: list[FoldResult]) -> None:
    n = len(classes)
    total = np.zeros((n, n), dtype=np.int64)
    for r in results:
        cm = confusion_matrix(r.test_labels, np.asarray(r.test_logits).argmax(-1), n)
        total += cm
        slug = fold_slug(r.name)
        acc = scores(cm)["accuracy"]
        write_confusion_csv(out / f"confusion_{slug}.csv", cm, classes)
        plot_confusion(out / f"confusion_{slug}.png", cm, classes, f"{r.name}: accuracy {acc:.3f}")
        if r.history:
            plot_curves(out / f"curves_{slug}.png", r.history, r.name)
    if len(results) > 1:
        acc = scores(total)["accuracy"]
        write_confusion_csv(out / "confusion_all.csv", total, classes)
        plot_confusion(out / "confusion_all.png", total, classes, f"all folds: accuracy {acc:.3f}")


def results_table(runs: Sequence[str | os.PathLike]) -> str:
    """Markdown table of run folders written by :func:`run_cv` (or :func:`ensemble_runs`),
    one row per folder, named by the folder. The wall time is the sum of the folds' training
    and scoring times (for an ensemble, of its members'), so it is right for resumed runs.

    Raises:
        WbError: a folder without ``metrics.json``.
    """

    import yaml

    head = (
        "| run | dataset | protocol | model | params | folds | accuracy (mean ± std) "
        "| macro-F1 (mean ± std) | train−val acc gap | wall time |\n"
        "|---|---|---|---|---:|---:|---|---|---:|---:|"
    )
    rows = [head]
    for run in runs:
        run = Path(run)
        m = _run_metrics(run)
        d = _read_json(run / "details.json")
        cfg = (
            yaml.safe_load((run / "config.yml").read_text())
            if (run / "config.yml").is_file()
            else {}
        )
        params = (d.get("folds") or [{}])[0].get("n_parameters")
        gap = (d.get("gap_at_best_epoch") or {}).get("acc_gap") or {}
        fold_seconds = [f.get("seconds") for f in d.get("folds") or []]
        # the folds' own times add up correctly when a run was resumed or folds were reused
        wall = sum(fold_seconds) if fold_seconds and None not in fold_seconds else None
        wall = wall or d.get("wall_seconds")
        cells = [
            run.resolve().name,
            m["dataset"],
            str((cfg or {}).get("protocol") or d.get("protocol", "?")),
            _short_model(m["model"]),
            f"{params:,}" if params else "?",
            str(len(m["folds"])),
            f"{100 * m['mean']['accuracy']:.2f} ± {100 * m['std']['accuracy']:.2f} %",
            f"{100 * m['mean']['macro_f1']:.2f} ± {100 * m['std']['macro_f1']:.2f} %",
            f"{100 * gap['mean']:+.2f} %" if gap.get("mean") is not None else "-",
            f"{wall / 60:.1f} min" if wall else "-",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _run_metrics(run: Path) -> dict:
    if not (run / "metrics.json").is_file():
        raise WbError(f"{run}: no metrics.json (not a finished wb classify run)")
    return _read_json(run / "metrics.json")


def fold_table(runs: Sequence[str | os.PathLike]) -> str:
    """Markdown table of test accuracy per fold: one row per run folder, one column per fold
    (in the order of the first run), then the mean; a fold a run lacks shows ``-``.

    Raises:
        WbError: a folder without ``metrics.json``.
    """
    metrics = []
    for run in runs:
        metrics.append((Path(run).resolve().name, _run_metrics(Path(run))))
    names: list[str] = []
    for _, m in metrics:
        names += [f["fold"] for f in m["folds"] if f["fold"] not in names]
    rows = [
        "| run | " + " | ".join(names) + " | mean |",
        "|---|" + "---:|" * (len(names) + 1),
    ]
    for name, m in metrics:
        acc = {f["fold"]: f["accuracy"] for f in m["folds"]}
        cells = [f"{100 * acc[n]:.1f}" if n in acc else "-" for n in names]
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {100 * m['mean']['accuracy']:.2f} |")
    return "\n".join(rows)


def _short_model(model: str) -> str:
    """``ensemble(a+b+c)`` -> ``ensemble of 3`` (the run column names the folder)."""
    return f"ensemble of {model.count('+') + 1}" if model.startswith("ensemble(") else model


def _read_json(path: Path) -> dict:
    import json

    return json.loads(path.read_text()) if path.is_file() else {}
