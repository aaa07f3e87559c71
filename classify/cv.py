"""Cross-validation over a dataset's official protocol, and the run folder it writes.

Every split of the protocol is used in turn as the test fold (``folds="all"``) or a chosen
subset; each fold trains from scratch (:func:`classify.train.train_fold`) with early stopping
on a validation set carved from that fold's training part.

Run folder (``out``)::

    config.yml               the resolved config (recipe conf.yml + per-model overrides + --set)
    metrics.json             {"dataset", "model", "folds": [{"fold", "accuracy", "macro_f1",
                              "n_test"}], "mean": {...}, "std": {...}}   (exactly this shape)
    details.json             per fold: per-class precision/recall/F1, confusion matrix,
                             train/validation gap at the best epoch, epochs, wall time; totals
    confusion_<fold>.png/.csv, confusion_all.png/.csv (summed over folds)
    curves_<fold>.png        training curves
    model.pt                 the fold model with the best *validation* accuracy (predict input)
    folds/<fold>/            Lightning logs, checkpoints while training, model.pt, result.json
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from classify.augment import GROUPS as AUGMENTATIONS
from classify.frontends import Frontend, LengthPolicy
from classify.metrics import (
    confusion_matrix,
    mean_std,
    plot_confusion,
    plot_curves,
    scores,
    write_confusion_csv,
)
from classify.train import FoldResult, Say, TrainConfig, _stderr, train_fold
from wb import names, paths
from wb.config import apply_overrides, config_differences, load_yaml, merge, save_yaml
from wb.errors import ConfigError, WbError
from wb.runs import atomic_write, write_json

HEAD_NAMES = names.CLASSIFIER_HEADS


def _signature_defaults(fn, skip: Sequence[str] = ()) -> dict[str, Any]:
    """Keyword defaults of ``fn`` as plain YAML values (tuples become lists)."""
    out = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name in skip or p.default is inspect.Parameter.empty or name == "self":
            continue
        out[name] = list(p.default) if isinstance(p.default, tuple) else p.default
    return out


def defaults() -> dict[str, Any]:
    """The complete default config; a recipe's ``conf.yml`` is merged over it.

    Every group lists every constructor argument with its default, so any of them can be set
    with ``--set group.key=value``; ``null`` sample rate / duration mean "the dataset's
    recommendation".
    """
    from classify.models import head_class

    train = _signature_defaults(TrainConfig)
    data = _signature_defaults(LengthPolicy)
    data["seconds"] = None
    frontend = _signature_defaults(Frontend.__init__)
    frontend["sample_rate"] = None
    frontend["normalize"] = True
    augment = {
        name: _signature_defaults(cls.__init__, skip=("sample_rate",))
        for name, cls in AUGMENTATIONS.items()
    }
    model: dict[str, Any] = {"name": "cnn"}
    for name in HEAD_NAMES:
        model[name] = _signature_defaults(
            head_class(name).__init__, skip=("n_classes", "n_bins", "n_frames")
        )
    return {
        "dataset_options": {},
        "protocol": None,
        "extra_train": None,
        "cache_dir": None,
        "data": data,
        "frontend": frontend,
        "augment": augment,
        "model": model,
        "train": train,
        "per_model": {},
    }


def recipe_config_path(dataset: str) -> Path | None:
    """``recipes/<dataset>/conf.yml`` when the recipe exists, else ``None``."""
    import recipes

    p = Path(recipes.__file__).parent / dataset / "conf.yml"
    return p if p.is_file() else None


def resolve_config(
    dataset: str,
    model: str | None = None,
    overrides: Sequence[str] = (),
    epochs: int | None = None,
    protocol: str | None = None,
    config_path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Build the run config: defaults <- recipe conf.yml <- per-model block <- overrides.

    ``model`` (``--model``), ``epochs`` (``--epochs``) and ``protocol`` (``--protocol``) set
    ``model.name``, ``train.epochs`` and ``protocol``; then the ``--set`` overrides apply.
    Both win over the recipe's per-model block (``per_model: {<head>: {group: {key: value}}}``)
    which is merged over the groups when that head is selected.

    Returns:
        the resolved config tree (``model.name`` selects the head; ``model.<name>`` holds its
        kwargs; see :func:`head_config`).

    Raises:
        ConfigError: unknown keys, invalid YAML, unknown model name.
    """
    path = Path(config_path) if config_path else recipe_config_path(dataset)
    base = merge(defaults(), load_yaml(path) if path else {})
    base["dataset"] = dataset

    def explicit(cfg: dict[str, Any]) -> dict[str, Any]:
        cfg = merge(cfg, {})
        if model is not None:
            cfg["model"]["name"] = model
        if epochs is not None:
            cfg["train"]["epochs"] = int(epochs)
        if protocol is not None:
            cfg["protocol"] = protocol
        return apply_overrides(cfg, overrides)

    name = explicit(base)["model"].get("name")
    if name not in HEAD_NAMES:
        raise ConfigError(f"unknown model {name!r} (choose from {', '.join(HEAD_NAMES)})")
    per = (base.get("per_model") or {}).get(name) or {}
    if not isinstance(per, dict):
        raise ConfigError(f"per_model.{name} must be a mapping of config groups")
    return explicit(merge(base, per))


def head_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """``{"name": head, **kwargs}`` for :class:`~classify.models.Classifier` from ``cfg``."""
    name = cfg["model"]["name"]
    kwargs = cfg["model"].get(name) or {}
    if not isinstance(kwargs, dict):
        raise ConfigError(f"model.{name} must be a mapping of the head's options")
    return {"name": name, **kwargs}


def select_splits(splits: list, folds: Sequence[str] | str | None) -> list:
    """Pick splits by name, ``fold<k>`` shorthand, or 1-based position; ``all``/None: all.

    Args:
        splits: the protocol's splits.
        folds: ``"all"``, ``None``, or names such as ``["1", "fold3", "speaker=theo"]``
            (comma-separated strings are split).

    Raises:
        WbError: a fold that matches none (the message lists the available names).
    """
    if folds is None or folds == "all":
        return list(splits)
    items = [folds] if isinstance(folds, str) else list(folds)
    wanted = [w.strip() for item in items for w in str(item).split(",") if w.strip()]
    if not wanted or "all" in wanted:
        return list(splits)
    by_name = {s.name: s for s in splits}
    out = []
    for w in wanted:
        s = by_name.get(w) or by_name.get(f"fold{w}")
        if s is None and w.isdigit() and 1 <= int(w) <= len(splits):
            s = splits[int(w) - 1]
        if s is None:
            names = ", ".join(by_name)
            raise WbError(f"unknown fold {w!r} (available: {names})")
        if s not in out:
            out.append(s)
    return out


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "fold"


def _rank() -> int:
    for var in ("RANK", "LOCAL_RANK"):
        if os.environ.get(var):
            return int(os.environ[var])
    return 0


def open_audio(dataset, sample_rate: int, cache_dir: str | os.PathLike | None, say: Say):
    """Decoded, resampled, memory-mapped audio of all clips (:class:`classify.cache.AudioCache`)."""
    from classify.cache import AudioCache

    root = Path(cache_dir) if cache_dir else paths.cache_dir("classify")
    t0 = time.time()
    cache = AudioCache(dataset.clips, sample_rate=sample_rate, cache_dir=root, name=dataset.name)
    say(f"audio cache: {len(cache)} clips at {sample_rate} Hz ({time.time() - t0:.1f} s)")
    return cache


def run_cv(
    dataset: str,
    cfg: dict[str, Any],
    out: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    folds: Sequence[str] | str | None = "all",
    download: bool = False,
    resume: bool = False,
    say: Say = _stderr,
) -> dict[str, Any]:
    """Cross-validate ``cfg`` on ``dataset`` and write the run folder.

    Args:
        dataset: registry name (esc50, urbansound8k, audiomnist, fsdd, coral, folder).
        cfg: resolved config from :func:`resolve_config`.
        out: run folder (created).
        data_dir: dataset folder (``None``: the adapter's default).
        folds: see :func:`select_splits`.
        download: let the adapter download a missing dataset.
        resume: reuse finished folds and continue interrupted ones from their last checkpoint.
        say: progress-line sink.

    Returns:
        the ``metrics.json`` dictionary.

    Raises:
        WbError: unknown dataset/protocol/fold, missing data, invalid settings.
    """
    from classify.datasets import get_dataset

    out = Path(out)
    if _rank() == 0:  # DDP ranks > 0 re-run the command after rank 0 wrote config.yml
        _check_run_folder(out, resume)
    ds = get_dataset(dataset, data_dir=data_dir, download=download,
                     **dict(cfg.get("dataset_options") or {}))  # fmt: skip
    splits = select_splits(ds.splits(cfg.get("protocol")), folds)
    cfg = dict(cfg)
    cfg["protocol"] = cfg.get("protocol") or ds.default_protocol
    cfg["frontend"] = dict(cfg["frontend"])
    if not cfg["frontend"].get("sample_rate"):
        cfg["frontend"]["sample_rate"] = int(ds.sample_rate)
    cfg["data"] = dict(cfg["data"])
    if not cfg["data"].get("seconds"):
        cfg["data"]["seconds"] = float(ds.clip_seconds)
    head = head_config(cfg)
    fold_cfg = {
        "data": cfg["data"], "frontend": cfg["frontend"], "augment": cfg["augment"],
        "model": head, "train": cfg["train"],
    }  # fmt: skip
    rank0 = _rank() == 0
    if resume and (out / "config.yml").is_file():
        _check_same_config(out, cfg)
    elif rank0:
        out.mkdir(parents=True, exist_ok=True)
        save_yaml(cfg, out / "config.yml")
    say(ds.summary() if hasattr(ds, "summary") else f"{ds.name}: {len(ds.clips)} clips")
    say(
        f"protocol {cfg['protocol']}: folds {', '.join(s.name for s in splits)}; "
        f"model {head['name']}"
    )
    audio = open_audio(ds, int(cfg["frontend"]["sample_rate"]), cfg.get("cache_dir"), say)
    if cfg.get("extra_train"):
        ds, audio, splits = add_extra_train(ds, audio, splits, cfg, say)

    t0 = time.time()
    results: list[FoldResult] = []
    for split in splits:
        fold_dir = out / "folds" / _slug(split.name)
        res = train_fold(ds, audio, split, fold_cfg, fold_dir, resume=resume, say=say)
        if rank0:
            acc = scores(confusion_matrix(res.test_labels, res.test_logits.argmax(-1),
                                          len(ds.classes)))["accuracy"]  # fmt: skip
            say(f"[{split.name}] test accuracy {acc:.4f} ({res.seconds:.0f} s)")
        results.append(res)
    if not rank0:
        return {}
    metrics, details = summarize(ds, head["name"], results)
    details["wall_seconds"] = time.time() - t0
    details["protocol"] = cfg["protocol"]
    write_json(out / "metrics.json", metrics)
    write_json(out / "details.json", details)
    _write_plots(out, ds.classes, results)
    best = max(results, key=lambda r: (np.nan_to_num(r.val_accuracy, nan=-1.0), -results.index(r)))
    if best.model_path and Path(best.model_path).is_file():
        atomic_write(out / "model.pt", lambda tmp: shutil.copyfile(best.model_path, tmp))
    say(
        f"{ds.name} {head['name']}: accuracy {metrics['mean']['accuracy']:.4f} "
        f"± {metrics['std']['accuracy']:.4f}, macro-F1 {metrics['mean']['macro_f1']:.4f} "
        f"± {metrics['std']['macro_f1']:.4f} over {len(results)} fold(s) -> {out}/metrics.json"
    )
    return metrics


#: Config keys that may change when a run is resumed: they change speed, not results.
RESUME_MAY_CHANGE = (
    "train.threads", "train.num_workers", "train.eval_batch_size", "train.keep_checkpoints",
    "cache_dir",
)  # fmt: skip


def _check_run_folder(out: Path, resume: bool) -> None:
    """Refuse to start a fresh run in a folder that holds anything, or to resume a non-run.

    Raises:
        WbError: ``out`` is a file; ``out`` is not empty and ``resume`` is off; ``resume`` on
            a non-empty folder without ``config.yml``.
    """
    if out.exists() and not out.is_dir():
        raise WbError(f"{out}: exists and is not a folder")
    busy = out.is_dir() and any(out.iterdir())
    if busy and not resume:
        raise WbError(f"{out}: not empty; pass --resume to continue that run or choose a new --out")
    if busy and resume and not (out / "config.yml").is_file():
        raise WbError(f"{out}: not a wb classify run (no config.yml); choose a new --out")


def _check_same_config(out: Path, cfg: dict[str, Any]) -> None:
    """Refuse ``--resume`` with a config that differs from the run's saved ``config.yml``.

    Raises:
        WbError: naming every dotted key that differs (except :data:`RESUME_MAY_CHANGE`).
    """
    saved = merge(defaults(), load_yaml(out / "config.yml"))  # keys added since: defaults
    diff = config_differences(saved, cfg, ignore=RESUME_MAY_CHANGE)
    if diff:
        shown = ", ".join(diff[:8]) + (f" and {len(diff) - 8} more" if len(diff) > 8 else "")
        raise WbError(
            f"{out}: --resume with a different config ({shown} differ from {out}/config.yml); "
            "resume with the same settings or choose a new --out"
        )


class ConcatAudio:
    """Two decoded-audio collections indexed as one: ``audio[i]`` -> ``(samples,)`` float32.

    Indices ``0..len(first)-1`` read ``first``, the next ``len(second)`` read ``second``.

    Raises:
        IndexError: an index outside ``0..len(first) + len(second) - 1`` (negative ones too).
    """

    def __init__(self, first, second) -> None:
        self.first, self.second = first, second

    def __len__(self) -> int:
        return len(self.first) + len(self.second)

    def __getitem__(self, i: int) -> np.ndarray:
        n = len(self.first)
        if not 0 <= i < len(self):
            raise IndexError(f"clip index {i} outside 0..{len(self) - 1}")
        return self.first[i] if i < n else self.second[i - n]


def add_extra_train(ds, audio, splits: list, cfg: dict[str, Any], say: Say = _stderr):
    """Append the ``extra_train`` folder's clips to every split as training-only clips.

    ``cfg["extra_train"]`` names a ``<class_name>/*.wav`` folder (the layout of
    :mod:`classify.datasets.folder`, e.g. one written by
    :func:`classify.synth_speech.synthesize`) whose class names are classes of ``ds`` (one
    class is enough). Its clips get indices after the dataset's own and go to each split's
    :attr:`~classify.datasets.base.Split.extra_train`: trained on (and so part of the
    per-frequency statistics fitted on the training clips), never used for the validation
    set, the train/validation gap, or testing. They are decoded and resampled to
    ``cfg["frontend"]["sample_rate"]`` into their own cache.

    Args:
        ds: the :class:`~classify.datasets.base.ClipDataset`.
        audio: its decoded audio (``audio[i]`` -> ``(samples,)``).
        splits: the splits to extend.
        cfg: resolved config (``extra_train``, ``frontend.sample_rate``, ``cache_dir``).
        say: progress-line sink.

    Returns:
        ``(dataset with the extra clips appended, combined audio, splits)``.

    Raises:
        DatasetNotFound: the folder is missing or holds no class folder with audio.
        ConfigError: a class folder that is not a class of ``ds``, or a file that is also
            one of the dataset's own clips.
        AudioError: an extra file cannot be decoded.
    """
    import hashlib
    from dataclasses import replace

    from classify.datasets import check_split, folder
    from classify.datasets.base import Clip, ClipDataset

    root = Path(cfg["extra_train"])
    names, files = folder.scan(root, min_classes=1, what="extra_train")
    unknown = [c for c in names if c not in ds.classes]
    if unknown:
        raise ConfigError(
            f"extra_train: {root}: class folder(s) {', '.join(unknown)} are not classes of "
            f"{ds.name} ({', '.join(ds.classes)})"
        )
    own = {Path(c.path).resolve() for c in ds.clips}
    shared = [p for paths in files for p in paths if p.resolve() in own]
    if shared:
        raise ConfigError(
            f"extra_train: {root} holds {len(shared)} of {ds.name}'s own clips (e.g. "
            f"{shared[0]}); they could end up in a test fold"
        )
    clips = [
        Clip(p, ds.classes.index(name), "extra", f"extra:{p.relative_to(root).as_posix()}")
        for name, paths in zip(names, files, strict=True)
        for p in paths
    ]
    tag = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:10]
    extra = ClipDataset(f"extra-{tag}", list(ds.classes), clips, ds.sample_rate, ds.clip_seconds)
    n = len(ds.clips)
    more = tuple(range(n, n + len(clips)))
    say(f"extra_train: {len(clips)} training-only clips from {root}")
    extra_audio = open_audio(extra, int(cfg["frontend"]["sample_rate"]), cfg.get("cache_dir"), say)
    combined = replace(ds, clips=[*ds.clips, *clips])
    out = [replace(s, extra_train=more) for s in splits]
    for s in out:
        check_split(combined, s)
    return combined, ConcatAudio(audio, extra_audio), out


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


def _nan_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)


def _write_plots(out: Path, classes: list[str], results: list[FoldResult]) -> None:
    n = len(classes)
    total = np.zeros((n, n), dtype=np.int64)
    for r in results:
        cm = confusion_matrix(r.test_labels, np.asarray(r.test_logits).argmax(-1), n)
        total += cm
        slug = _slug(r.name)
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
    return metrics
