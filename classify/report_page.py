"""The report page of a ``wb classify`` run folder (``wb report DIR``; written by every
``wb classify`` run): per-fold accuracy and macro-F1, the pooled confusion matrix, training
curves with the overfitting %, and the most confidently misclassified test clips with
players."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from wb.report import (
    Figure,
    Page,
    Section,
    Table,
    Text,
    Tracks,
    clip_track,
    figure_data_uri,
    fmt,
)

#: Clips shown in the "worst misclassified" section, and the seconds played of each.
WORST_CLIPS = 8
CLIP_SECONDS = 10.0


def _pct(x: float | None) -> str:
    return fmt(None if x is None else 100 * x) + (" %" if x is not None else "")


def fold_table(metrics: dict, details: dict) -> Table:
    """Per-fold test accuracy, macro-F1, clip counts, best epoch and the eval-mode
    train-validation accuracy gap ("overfitting %") at the best epoch; then mean ± std."""
    det = {f["fold"]: f for f in details.get("folds") or []}
    rows = []
    for f in metrics["folds"]:
        d = det.get(f["fold"], {})
        gap = (d.get("gap_at_best_epoch") or {}).get("acc_gap")
        rows.append([
            str(f["fold"]), _pct(f["accuracy"]), _pct(d.get("chunk_accuracy")),
            _pct(f["macro_f1"]), str(f["n_test"]), str(d.get("n_train", "?")),
            fmt(d.get("best_epoch")), _pct(gap),
        ])  # fmt: skip
    m, s = metrics["mean"], metrics["std"]
    gap = ((details.get("gap_at_best_epoch") or {}).get("acc_gap") or {}).get("mean")
    chunk = [d.get("chunk_accuracy") for d in det.values() if d.get("chunk_accuracy") is not None]
    rows.append([
        "mean ± std", f"{100 * m['accuracy']:.2f} ± {100 * s['accuracy']:.2f} %",
        _pct(sum(chunk) / len(chunk) if chunk else None),
        f"{100 * m['macro_f1']:.2f} ± {100 * s['macro_f1']:.2f} %",
        str(sum(f["n_test"] for f in metrics["folds"])), "", "", _pct(gap),
    ])  # fmt: skip
    cols = ["fold", "accuracy", "chunk accuracy", "macro-F1", "test clips", "train clips",
            "best epoch", "overfitting %"]  # fmt: skip
    caption = (
        "accuracy: per clip (track), window logits averaged; chunk accuracy: every evaluation "
        "window on its own; overfitting %: training minus validation accuracy of the selected "
        "weights, both scored in eval mode on un-augmented clips; std over folds with ddof=0"
    )
    return Table(cols, rows, caption)


def worst_clips(run: Path, n: int = WORST_CLIPS, seconds: float = CLIP_SECONDS) -> list[Any]:
    """The ``n`` misclassified test clips predicted with the highest probability (from
    ``predictions.csv``), each as a player with its spectrogram (first ``seconds`` s).
    Clips whose file is gone are listed as text."""
    from wb import audio
    from wb.errors import AudioError

    path = run / "predictions.csv"
    if not path.is_file():
        return [Text("No predictions.csv in this run (older wb); rerun it to see the clips.")]
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["label"] != r["predicted"]]
    if not rows:
        return [Text("No test clip is misclassified.")]
    rows.sort(key=lambda r: -float(r["p_predicted"]))
    tracks, gone = [], []
    for r in rows[:n]:
        note = (f"true {r['label']} (p={float(r['p_label']):.2f}), predicted {r['predicted']} "
                f"(p={float(r['p_predicted']):.2f}), fold {r['fold']}")  # fmt: skip
        try:
            x, sr = audio.load(r["path"], channels=1)
        except AudioError:
            gone.append(f"{r['path']}: {note}")
            continue
        x = x[0, : int(seconds * sr)].numpy()
        tracks.append(clip_track(x, sr, Path(r["path"]).name, note))
    items: list[Any] = [Tracks(tracks)] if tracks else []
    if gone:
        items.append(Text("Not readable any more: " + "; ".join(gone)))
    items.append(Text(f"{len(rows)} misclassified test clips in all; the {min(n, len(rows))} "
                      "predicted with the highest probability are shown."))  # fmt: skip
    return items


def classification_page(folder: Path) -> Page | None:
    """The page of a ``wb classify`` run folder, or ``None`` when ``folder`` lacks
    ``metrics.json`` with folds or ``details.json``."""
    from classify.metrics import confusion_figure, curves_figure

    try:
        metrics = json.loads((folder / "metrics.json").read_text())
        details = json.loads((folder / "details.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(metrics, dict) or "folds" not in metrics or "classes" not in details:
        return None
    sections = [Section("Test folds", [fold_table(metrics, details)])]
    pooled = details.get("pooled") or {}
    if pooled.get("confusion"):
        cm = np.asarray(pooled["confusion"])
        title = f"all folds: accuracy {100 * pooled['accuracy']:.2f} %"
        fig = confusion_figure(cm, details["classes"], title)
        sections.append(Section("Confusion matrix", [Figure(figure_data_uri(fig),
                        "rows: true class, normalised; counts annotated")]))  # fmt: skip
    curves = []
    for f in sorted((folder / "folds").glob("*/result.json")):
        try:
            result = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if result.get("history"):
            fig = curves_figure(result["history"], f"fold {result.get('name', f.parent.name)}")
            curves.append(Figure(figure_data_uri(fig)))
    if curves:
        sections.append(Section("Training curves", curves))
    sections.append(Section("Worst misclassified clips", worst_clips(folder)))
    if (folder / "config.yml").is_file():
        sections.append(Section("Resolved config", [Text((folder / "config.yml").read_text(),
                                                         pre=True)]))  # fmt: skip
    subtitle = (f"{metrics['dataset']}, model {metrics['model']}, {len(metrics['folds'])} "
                f"fold(s): accuracy {100 * metrics['mean']['accuracy']:.2f} %, macro-F1 "
                f"{100 * metrics['mean']['macro_f1']:.2f} %")  # fmt: skip
    return Page(f"Classification: {folder.resolve().name}", subtitle, sections,
                kind="classification")  # fmt: skip


def write_run_report(out: Path, say: Callable[[str], None]) -> None:
    """Write ``out/report.html`` of a finished run; a failure is said, not raised (the run's
    results are already written and the page is only a view of them)."""
    from wb.report import write_page

    try:
        page = classification_page(out)
        if page is not None:
            say(f"report: {write_page(page, out)}")
    except Exception as exc:  # noqa: BLE001 - see above
        say(f"warning: report.html not written ({type(exc).__name__}: {exc})")
