"""Probability-average ensembles of finished cross-validation runs (``wb classify ensemble``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from classify.ensemble import ensemble_runs
from classify.train import FoldResult
from wb.cli import main
from wb.errors import WbError
from wb.runs import write_json

CLASSES = ["a", "b", "c"]


def _run(folder: Path, model: str, logits: dict[str, list[list[float]]], labels) -> Path:
    """A run folder as run_cv leaves it: details.json and folds/<fold>/result.json."""
    for k, (fold, z) in enumerate(logits.items()):
        res = FoldResult(
            name=fold, test_indices=[10 * k + i for i in range(len(z))],
            test_logits=np.asarray(z, dtype=np.float32), test_labels=list(labels[fold]),
            best_epoch=1, epochs_run=2, gap={}, history=[], n_train=5, n_val=1,
            seconds=1.0, model_path="", extra={"n_parameters": 100},
        )  # fmt: skip
        write_json(folder / "folds" / fold / "result.json", res.to_json())
    details = {
        "dataset": "toy", "model": model, "classes": CLASSES, "protocol": "loso",
        "folds": [{"fold": f, "n_parameters": 100} for f in logits], "wall_seconds": 60.0,
    }  # fmt: skip
    write_json(folder / "details.json", details)
    return folder


LABELS = {"f1": [0, 1, 2, 0], "f2": [2, 2]}


def test_probabilities_are_averaged_not_logits(tmp_path: Path, capsys) -> None:
    # clip 0: A is sure of the wrong class b, B mildly prefers a -> average picks b
    # clip 1: A mildly b, B strongly b; clip 2: A says c, B says a with p 0.5 / c 0.49
    a = _run(tmp_path / "a", "cnn", {
        "f1": [[0, 6, 0], [0, 1, 0], [0, 0, 3], [5, 0, 0]],
        "f2": [[0, 0, 2], [2, 0, 0]],
    }, LABELS)  # fmt: skip
    b = _run(tmp_path / "b", "mamba", {
        "f1": [[1, 0, 0], [0, 4, 0], [np.log(0.5), np.log(0.01), np.log(0.49)], [0, 0, 0]],
        "f2": [[0, 0, 2], [0, 0, 2.5]],
    }, LABELS)  # fmt: skip
    m = ensemble_runs([a, b], tmp_path / "ens")
    assert m["model"] == "ensemble(a+b)"
    assert [f["fold"] for f in m["folds"]] == ["f1", "f2"]
    # f1: predictions b, b, c, a -> 3/4 right; f2: c, then A(p_a=.79) vs B(p_c=.86) -> c
    assert [f["accuracy"] for f in m["folds"]] == [0.75, 1.0]
    assert m["mean"]["accuracy"] == pytest.approx(0.875)
    assert m["std"]["accuracy"] == pytest.approx(0.125)  # population std over folds
    saved = json.loads((tmp_path / "ens" / "metrics.json").read_text())
    assert saved == m and set(saved) == {"dataset", "model", "folds", "mean", "std"}
    details = json.loads((tmp_path / "ens" / "details.json").read_text())
    assert details["members"] == [str(a), str(b)] and details["member_models"] == ["cnn", "mamba"]
    assert details["folds"][0]["n_parameters"] == 200
    assert (tmp_path / "ens" / "confusion_all.csv").is_file()
    # the same through the CLI
    code = main(["classify", "ensemble", str(a), str(b), "--out", str(tmp_path / "cli")])
    assert code == 0 and "ensemble(a+b): accuracy 87.50" in capsys.readouterr().out


def test_mismatched_runs_are_refused(tmp_path: Path, capsys) -> None:
    a = _run(tmp_path / "a", "cnn", {"f1": [[1, 0, 0]] * 4, "f2": [[1, 0, 0]] * 2}, LABELS)
    other = _run(tmp_path / "o", "cnn", {"f1": [[1, 0, 0]] * 4}, {"f1": LABELS["f1"]})
    with pytest.raises(WbError, match="folds"):
        ensemble_runs([a, other], tmp_path / "x")
    with pytest.raises(WbError, match="at least two"):
        ensemble_runs([a], tmp_path / "x")
    with pytest.raises(WbError, match="no finished folds"):
        ensemble_runs([a, tmp_path / "empty"], tmp_path / "x")
    code = main(["classify", "ensemble", str(a), str(other), "--out", str(tmp_path / "y")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("error:")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_predictions_and_report_follow_the_average(tmp_path: Path) -> None:
    import csv

    logits = {"f1": [[0, 6, 0], [0, 1, 0], [0, 0, 3], [5, 0, 0]], "f2": [[0, 0, 2], [2, 0, 0]]}
    a = _run(tmp_path / "a", "cnn", logits, LABELS)
    b = _run(tmp_path / "b", "cnn", {"f1": [[4, 0, 0], [0, 4, 0], [0, 0, 4], [4, 0, 0]],
                                     "f2": [[0, 0, 4], [0, 0, 4]]}, LABELS)  # fmt: skip
    rows = [["fold", "path", "label", "predicted", "p_label", "p_predicted"]]
    rows += [[f, f"/clips/{f}_{k}.wav", "a", "a", "1", "1"] for f, z in logits.items()
             for k in range(len(z))]  # fmt: skip
    with open(a / "predictions.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    ensemble_runs([a, b], tmp_path / "ens")
    with open(tmp_path / "ens" / "predictions.csv", newline="") as fh:
        got = list(csv.DictReader(fh))
    assert [r["path"] for r in got] == [r[1] for r in rows[1:]]
    # f1 clip 0: a says b (p .99), b says a (p .96) -> average prefers b; f2 clip 1: c
    assert [r["predicted"] for r in got] == ["b", "b", "c", "a", "c", "c"]
    assert [r["label"] for r in got] == ["a", "b", "c", "a", "c", "c"]
    html = (tmp_path / "ens" / "report.html").read_text()
    assert "ensemble(a+b)" in html and "Confusion matrix" in html
