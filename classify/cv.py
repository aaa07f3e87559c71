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
    predictions.csv          each test clip: fold, path, true and predicted class, probabilities
    report.html              the page of this run (wb report; classify.report_page)
    model.pt                 the fold model with the best *validation* accuracy (predict input)
    folds/<fold>/            Lightning logs, checkpoints while training, model.pt, result.json
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from classify.config import defaults, head_config
from classify.metrics import (
    confusion_matrix,
    scores,
)
from classify.report_page import write_run_report
from classify.reports import _write_plots, fold_slug, summarize, write_predictions
from classify.train import FoldResult, Say, _stderr, train_fold
from wb import paths
from wb.config import config_differences, load_yaml, merge, save_yaml
from wb.errors import ConfigError, WbError
from wb.runs import atomic_write, write_json


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


def _rank() -> int:
    for var in ("RANK", "LOCAL_RANK"):
        if os.environ.get(var):
            return int(os.environ[var])
    return 0


def open_audio(dataset, sample_rate: int, cache_dir: str | os.PathLike | None, say: Say):
    """Decoded, resampled, memory-mapped audio of all clips
    (:class:`wb.training.audio_cache.AudioCache`)."""
    from wb.training.audio_cache import AudioCache

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
    resuming = resume and (out / "config.yml").is_file()
    if resuming:
        _check_same_config(out, cfg)
    say(ds.summary() if hasattr(ds, "summary") else f"{ds.name}: {len(ds.clips)} clips")
    say(
        f"protocol {cfg['protocol']}: folds {', '.join(s.name for s in splits)}; "
        f"model {head['name']}"
    )
    audio = open_audio(ds, int(cfg["frontend"]["sample_rate"]), cfg.get("cache_dir"), say)
    if cfg.get("extra_train"):
        ds, audio, splits = add_extra_train(ds, audio, splits, cfg, say)
    # the run folder is created only once the data has opened, so that a bad setting leaves
    # nothing behind that would block the corrected command
    if rank0 and not resuming:
        out.mkdir(parents=True, exist_ok=True)
        save_yaml(cfg, out / "config.yml")

    t0 = time.time()
    results: list[FoldResult] = []
    for split in splits:
        fold_dir = out / "folds" / fold_slug(split.name)
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
    write_predictions(out / "predictions.csv", ds, results)
    _write_plots(out, ds.classes, results)
    write_run_report(out, say)
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
    "train.time_limit_minutes", "cache_dir",
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


def _current_names(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` with a former ``train.monitor`` spelling (``val_loss``) in today's names."""
    from classify.train import _FORMER_MONITORS

    train = dict(cfg.get("train") or {})
    train["monitor"] = _FORMER_MONITORS.get(train.get("monitor"), train.get("monitor"))
    return {**cfg, "train": train}


def _check_same_config(out: Path, cfg: dict[str, Any]) -> None:
    """Refuse ``--resume`` with a config that differs from the run's saved ``config.yml``.

    Raises:
        WbError: naming every dotted key that differs (except :data:`RESUME_MAY_CHANGE`).
    """
    saved = merge(defaults(), load_yaml(out / "config.yml"))  # keys added since: defaults
    diff = config_differences(_current_names(saved), _current_names(cfg), RESUME_MAY_CHANGE)
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
