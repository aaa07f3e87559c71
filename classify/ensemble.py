"""Probability-average ensembles of finished cross-validation runs (``wb classify ensemble``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from classify.report_page import write_run_report
from classify.reports import _read_json, _write_plots, summarize, write_predictions
from classify.train import FoldResult
from wb.errors import WbError
from wb.runs import write_json


def ensemble_runs(runs: Sequence[str | os.PathLike], out: str | os.PathLike) -> dict:
    """Score the probability average of finished runs on their common test folds.

    Each member's clip logits on every test fold (``folds/<fold>/result.json``) are turned
    into class probabilities (softmax), the members' probabilities are averaged with equal
    weights, and the average is scored like a single run. The members are fixed before
    looking at test scores (e.g. every head, or several seeds of one head); choosing them by
    their test-fold accuracy would make the figure optimistic.

    Args:
        runs: two or more run folders written by :func:`run_cv` on the same dataset,
            protocol and folds.
        out: folder for ``metrics.json`` (the schema of :func:`run_cv`; ``model`` is
            ``"ensemble(<member models>)"``), ``details.json`` (with the member folders) and
            the confusion matrices.

    Returns:
        the ``metrics.json`` dictionary.

    Raises:
        WbError: fewer than two runs, a run without finished folds, or runs whose dataset,
            classes, fold names or test clips differ.
    """
    import json
    from types import SimpleNamespace

    if len(runs) < 2:
        raise WbError("an ensemble needs at least two run folders")
    out = Path(out)
    for run in map(Path, runs):
        if run.resolve() == out.resolve() or run.resolve() in out.resolve().parents:
            raise WbError(f"--out {out} is (inside) the input run {run}; choose another folder")
    if out.is_dir() and any(out.iterdir()) and "members" not in _read_json(out / "details.json"):
        raise WbError(f"--out {out}: not empty and not an earlier ensemble; choose another folder")
    members = []
    for run in map(Path, runs):
        files = sorted((run / "folds").glob("*/result.json"))
        meta = _read_json(run / "details.json")
        if not files or not meta:
            raise WbError(f"{run}: no finished folds (folds/*/result.json, details.json)")
        folds = {}
        for f in files:
            r = FoldResult.from_json(json.loads(f.read_text()))
            folds[r.name] = r
        members.append((run, meta, folds))
    run0, meta0, folds0 = members[0]
    for run, meta, folds in members[1:]:
        for key in ("dataset", "classes"):
            if meta.get(key) != meta0.get(key):
                raise WbError(f"{run}: {key} {meta.get(key)!r} differs from {run0}'s")
        if set(folds) != set(folds0):
            raise WbError(f"{run}: folds {sorted(folds)} differ from {run0}'s {sorted(folds0)}")
    results = []
    for name in [f["fold"] for f in meta0["folds"] if f["fold"] in folds0]:
        ref = folds0[name]
        prob = np.zeros_like(np.asarray(ref.test_logits, dtype=np.float64))
        for run, _, folds in members:
            r = folds[name]
            if list(r.test_indices) != list(ref.test_indices):
                raise WbError(f"{run}: fold {name} has other test clips than {run0}")
            z = np.asarray(r.test_logits, dtype=np.float64)
            z = np.exp(z - z.max(axis=-1, keepdims=True))
            prob += z / z.sum(axis=-1, keepdims=True)
        prob /= len(members)
        results.append(
            FoldResult(
                name=name,
                test_indices=list(ref.test_indices),
                test_logits=np.log(np.maximum(prob, 1e-12)),
                test_labels=list(ref.test_labels),
                best_epoch=-1,
                epochs_run=0,
                gap={},
                history=[],
                n_train=ref.n_train,
                n_val=ref.n_val,
                seconds=sum(f[name].seconds for _, _, f in members),
                model_path="",
            )  # fmt: skip
        )
    ds = SimpleNamespace(name=meta0["dataset"], classes=list(meta0["classes"]))
    model = "ensemble(" + "+".join(run.name for run, _, _ in members) + ")"
    metrics, details = summarize(ds, model, results)
    details["members"] = [str(run) for run, _, _ in members]
    details["member_models"] = [m.get("model") for _, m, _ in members]
    details["gap_at_best_epoch"] = {"note": "not defined for an ensemble"}
    for fold in details["folds"]:
        fold.update(gap_at_best_epoch=None, best_epoch=None)
        fold["n_parameters"] = sum(
            int(f.get("n_parameters") or 0)
            for _, m, _ in members
            for f in m["folds"]
            if f["fold"] == fold["fold"]
        )
    details["protocol"] = meta0.get("protocol")
    details["wall_seconds"] = sum(float(m.get("wall_seconds") or 0.0) for _, m, _ in members)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    write_json(out / "details.json", details)
    _write_plots(out, ds.classes, results)
    clips = _clip_paths(run0)
    keys = [(r.name, k) for r in results for k in range(len(r.test_indices))]
    if clips is not None and all(key in clips for key in keys):
        ds.clips = {i: SimpleNamespace(path=clips[(r.name, k)]) for r in results
                    for k, i in enumerate(r.test_indices)}  # fmt: skip
        write_predictions(out / "predictions.csv", ds, results)
    write_run_report(out, lambda line: None)
    return metrics


def _clip_paths(run: Path) -> dict[tuple[str, int], str] | None:
    """``(fold, k) -> path`` of the k-th test clip of each fold, from a member's
    ``predictions.csv`` (rows follow the fold's test indices); ``None`` without one."""
    import csv

    path = Path(run) / "predictions.csv"
    if not path.is_file():
        return None
    out: dict[tuple[str, int], str] = {}
    counts: dict[str, int] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            k = counts.get(row["fold"], 0)
            out[(row["fold"], k)] = row["path"]
            counts[row["fold"]] = k + 1
    return out
