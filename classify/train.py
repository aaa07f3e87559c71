"""Training one fold: data sets over the decoded-audio cache, the Lightning trainer, evaluation.

:func:`train_fold` trains a :class:`~classify.models.Classifier` on one
:class:`~classify.datasets.base.Split`:

1. a validation set is carved from the split's training indices
   (:func:`classify.datasets.validation_split`; or the protocol's own ``validate`` part) --
   the test fold is never looked at until the end;
2. per-frequency normalisation statistics (when enabled) are fitted on the remaining training
   clips;
3. Lightning trains with early stopping and checkpointing on the validation metric
   (``last.ckpt`` each epoch for exact resume, ``best.ckpt`` for the best epoch);
4. the best epoch's weights are evaluated on the training clips, the validation clips and the
   test fold (clip-level logits averaged over windows).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from classify.augment import Augmentation
from classify.frontends import LengthPolicy, eval_windows, train_view
from classify.models import CLASS_REF, Classifier
from classify.system import SCHEDULES, ClassifierSystem, average_windows
from wb.checkpoint import count_parameters, load_torch_file
from wb.errors import ConfigError, WbError
from wb.lightning import precision as lightning_precision
from wb.progress import quiet_default
from wb.runs import write_json
from wb.training.config import TrainConfig as SpineTrainConfig
from wb.training.sampler import EpochSampler
from wb.training.trainer import fit, make_trainer

Say = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


#: Metric names accepted for ``train.monitor`` (former spellings map to the spine's names).
MONITORS = {"val/loss": "min", "val/accuracy": "max"}
_FORMER_MONITORS = {"val_loss": "val/loss", "val_acc": "val/accuracy"}


@dataclass
class TrainConfig(SpineTrainConfig):
    """The ``train:`` group of classification: :class:`wb.training.config.TrainConfig` (the
    shared keys, with classification defaults) plus these.

    Attributes:
        eval_batch_size: clips per evaluation batch.
        label_smoothing: epsilon of label smoothing (Szegedy et al. 2016), in [0, 1).
        patience: early-stopping patience in epochs (0: off).
        monitor: ``val/loss`` or ``val/accuracy`` (early stopping and best checkpoint;
            ``val_loss`` / ``val_acc`` are read as these).
        val_fraction: share of the training clips carved out for validation (0: none; then
            the last epoch is used).
        val_groups: ``auto`` (keep leakage groups whole when the protocol's test fold does),
            ``dataset`` (always) or ``clip`` (every clip its own group).
        keep_checkpoints: keep the Lightning checkpoints after a fold finishes.
        logger: ``csv`` or ``tensorboard`` (per-epoch metrics in the fold folder).

    ``threads``: on a shared, oversubscribed machine 1 thread (or ``OMP_WAIT_POLICY=PASSIVE``)
    avoids OpenMP spin-waiting.
    """

    epochs: int = 30
    batch_size: int = 64
    weight_decay: float = 1e-2
    warmup_epochs: float = 1.0
    min_lr: float | None = 1e-5
    grad_clip: float | None = 0.0
    threads: int | None = 0
    eval_batch_size: int = 128
    label_smoothing: float = 0.0
    patience: int = 10
    monitor: str = "val/loss"
    val_fraction: float = 0.1
    val_groups: str = "auto"
    keep_checkpoints: bool = False
    logger: str = "csv"

    def validate(self) -> None:
        """Shared checks plus the classification keys.

        Raises:
            ConfigError: an invalid value.
        """
        super().validate()
        self.check(SCHEDULES)
        if not float(self.lr) > 0:
            raise ConfigError(f"train.lr must be positive, got {self.lr}")
        self.monitor = _FORMER_MONITORS.get(self.monitor, self.monitor)
        if self.monitor not in MONITORS:
            raise ConfigError(f"train.monitor={self.monitor!r}: choose {' or '.join(MONITORS)}")
        if self.val_groups not in ("auto", "dataset", "clip"):
            raise ConfigError(f"train.val_groups={self.val_groups!r}: choose auto, dataset or clip")
        if self.logger not in ("csv", "tensorboard"):
            raise ConfigError(f"train.logger={self.logger!r}: choose csv or tensorboard")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(
                f"train.label_smoothing must be in [0, 1), got {self.label_smoothing}"
            )
        if int(self.eval_batch_size) < 1:
            raise ConfigError(f"train.eval_batch_size must be >= 1, got {self.eval_batch_size}")


# ------------------------------------------------------------------------------------ data


class TrainClips(Dataset):
    """Fixed-length training examples: random crop / placement and padding per epoch.

    Args:
        audio: indexable decoded audio (``audio[i]`` -> ``(samples,)`` float32), e.g.
            :class:`wb.training.audio_cache.AudioCache`.
        indices: clip indices into ``audio``.
        labels: label of every clip of ``audio`` (indexable by the same indices).
        n_samples: example length in samples.
        policy: :class:`~classify.frontends.LengthPolicy`.
        seed: crop seed.

    Items:
        ``__getitem__((k, epoch))`` -> ``(wave (n_samples,), label)``.
    """

    def __init__(self, audio, indices, labels, n_samples: int, policy: LengthPolicy, seed: int):
        self.audio, self.indices = audio, list(indices)
        self.labels = [int(labels[i]) for i in self.indices]
        self.n, self.policy, self.seed = n_samples, policy, seed

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item):
        k, epoch = item if isinstance(item, tuple) else (item, 0)
        rng = np.random.default_rng([self.seed, epoch, k])
        clip = np.asarray(self.audio[self.indices[k]], dtype=np.float32)
        wave = train_view(clip, self.n, self.policy, rng)
        return torch.from_numpy(np.ascontiguousarray(wave)), self.labels[k]


class EvalClips(Dataset):
    """Deterministic evaluation windows per clip (centre crop or sliding windows).

    Items:
        ``__getitem__(k)`` -> ``(windows (n_windows, n_samples), label)``.
    """

    def __init__(self, audio, indices, labels, n_samples: int, policy: LengthPolicy, hop: int):
        self.audio, self.indices = audio, list(indices)
        self.labels = [int(labels[i]) for i in self.indices]
        self.n, self.policy, self.hop = n_samples, policy, hop

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        clip = np.asarray(self.audio[self.indices[k]], dtype=np.float32)
        return torch.from_numpy(eval_windows(clip, self.n, self.policy, self.hop)), self.labels[k]


def eval_collate(batch):
    """Stack windows of several clips: ``(windows, owner, labels)``."""
    windows = torch.cat([w for w, _ in batch])
    owner = torch.cat(
        [torch.full((len(w),), i, dtype=torch.long) for i, (w, _) in enumerate(batch)]
    )
    return windows, owner, torch.tensor([y for _, y in batch], dtype=torch.long)


@torch.no_grad()
def predict_logits(
    classifier: Classifier,
    dataset: EvalClips,
    batch_size: int = 128,
    device: str | None = None,
    chunks: dict[str, int] | None = None,
) -> np.ndarray:
    """Clip-level logits (window logits averaged) for every clip of ``dataset``.

    Args:
        classifier: the model (put in eval mode for the call).
        dataset: the clips' evaluation windows.
        batch_size: clips per forward pass.
        device: where to run (default: the model's device).
        chunks: when given, ``"correct"`` and ``"total"`` are increased by the windows
            (chunks) classified right on their own and by all windows: chunk accuracy, as
            opposed to the track accuracy of the averaged logits.

    Returns:
        float32 array ``(len(dataset), n_classes)``.
    """
    device = device or next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    out = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=eval_collate)
    for windows, owner, labels in loader:
        logits = classifier(windows.to(device))
        out.append(average_windows(logits, owner.to(device), len(labels)).cpu())
        if chunks is not None:
            right = logits.argmax(-1).cpu() == labels[owner]
            chunks["correct"] = chunks.get("correct", 0) + int(right.sum())
            chunks["total"] = chunks.get("total", 0) + len(right)
    classifier.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def loss_and_accuracy(logits: np.ndarray, labels: Sequence[int]) -> tuple[float, float]:
    """Mean cross-entropy (nats) and accuracy of clip logits ``(clips, n_classes)``."""
    if not len(labels):
        return float("nan"), float("nan")
    lg = torch.from_numpy(np.asarray(logits, np.float32))
    y = torch.as_tensor(list(labels), dtype=torch.long)
    return float(F.cross_entropy(lg, y)), float((lg.argmax(-1) == y).float().mean())


# ------------------------------------------------------------------------------ one fold


@dataclass
class FoldResult:
    """What one fold produced.

    Attributes:
        name: split name.
        test_indices: clip indices of the test fold.
        test_logits: ``(n_test, n_classes)`` clip logits of the best epoch's model.
        test_labels: true labels ``(n_test,)``.
        best_epoch: 0-based epoch of the selected weights.
        epochs_run: epochs actually trained.
        gap: ``{"train_loss", "val_loss", "train_acc", "val_acc", "loss_gap", "acc_gap"}``
            of the best weights evaluated in eval mode on the (un-augmented) training and
            validation clips; ``loss_gap = val_loss - train_loss``, ``acc_gap = train_acc -
            val_acc``.
        history: per-epoch logged metrics.
        n_train, n_val: sizes of the training (extra clips included) and validation parts.
        seconds: wall time of the fold.
        model_path: exported model file (``wb-model/1``).
        val_accuracy: validation accuracy of the selected weights (NaN without validation).
    """

    name: str
    test_indices: list[int]
    test_logits: np.ndarray
    test_labels: list[int]
    best_epoch: int
    epochs_run: int
    gap: dict[str, float]
    history: list[dict[str, float]]
    n_train: int
    n_val: int
    seconds: float
    model_path: str
    val_accuracy: float = float("nan")
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain-value dictionary (for ``result.json``)."""
        d = asdict(self)
        d["test_logits"] = np.asarray(self.test_logits).tolist()
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FoldResult:
        """Inverse of :meth:`to_json`."""
        d = dict(d)
        d["test_logits"] = np.asarray(d["test_logits"], dtype=np.float32)
        return cls(**d)


def _accelerator(cfg: TrainConfig) -> str:
    if cfg.accelerator == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if cfg.accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("train.accelerator=gpu but no CUDA device is available")
        return "gpu"
    if cfg.accelerator != "cpu":
        raise ConfigError(f"train.accelerator={cfg.accelerator!r}: choose auto, cpu or gpu")
    return "cpu"


def _quiet_lightning() -> None:
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*isinstance.*treespec.*")


#: Logged metric -> key of the per-epoch history in ``details.json`` and the curves.
_HISTORY_KEYS = {
    "train/loss": "train_loss", "train/accuracy": "train_acc",
    "val/loss": "val_loss", "val/accuracy": "val_acc",
}  # fmt: skip


def _read_history(log_dir: Path) -> list[dict[str, float]]:
    """Merge Lightning's CSV metrics rows into one dict per epoch."""
    import csv

    files = sorted(log_dir.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    rows: dict[int, dict[str, float]] = {}
    for f in files:
        with open(f, newline="") as fh:
            for row in csv.DictReader(fh):
                if not row.get("epoch"):
                    continue
                e = int(float(row["epoch"]))
                d = rows.setdefault(e, {"epoch": e})
                for k, v in row.items():
                    if v not in ("", None) and k not in ("epoch", "step"):
                        d[_HISTORY_KEYS.get(k, k)] = float(v)
    return [rows[e] for e in sorted(rows)]


class EpochLine(pl.Callback):
    """Lightning callback printing one line per epoch (losses, accuracies, LR, seconds).

    Args:
        say: where the line goes.
        name: fold name shown in brackets.
        epochs: planned number of epochs.
    """

    def __init__(self, say: Say, name: str, epochs: int) -> None:
        self.say, self.name, self.epochs = say, name, epochs
        self.t0 = time.time()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        """Start the epoch timer."""
        self.t0 = time.time()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Print the epoch's line (rank 0 only)."""
        if not trainer.is_global_zero:
            return
        m = trainer.callback_metrics

        def g(k: str) -> str:
            return f"{float(m[k]):.4f}" if k in m else "-"

        self.say(
            f"[{self.name}] epoch {trainer.current_epoch + 1}/{self.epochs} "
            f"train_loss {g('train/loss')} train_acc {g('train/accuracy')} "
            f"val_loss {g('val/loss')} val_acc {g('val/accuracy')} lr {g('lr')} "
            f"({time.time() - self.t0:.1f} s)"
        )


class ClipDataModule(pl.LightningDataModule):
    """Loaders of one fold: seeded, DDP-sharded training clips and whole validation clips.

    Args:
        train_set: :class:`TrainClips` (items ``(index, epoch)`` from the sampler).
        val_set: :class:`EvalClips` or ``None`` (no validation).
        tcfg: the fold's :class:`TrainConfig` (batch sizes, workers, seed).
    """

    def __init__(self, train_set: TrainClips, val_set: EvalClips | None, tcfg: TrainConfig):
        super().__init__()
        self.train_set, self.val_set, self.tcfg = train_set, val_set, tcfg

    def train_dataloader(self) -> DataLoader:
        """Batches of augmented training clips, a new seeded order every epoch."""
        tr, t = self.trainer, self.tcfg
        sampler = EpochSampler(
            len(self.train_set), t.seed, shuffle=True,
            rank=tr.global_rank if tr else 0, world=tr.world_size if tr else 1,
        )  # fmt: skip
        return DataLoader(
            self.train_set, batch_size=t.batch_size, sampler=sampler,
            drop_last=lone_last_batch(len(sampler), t.batch_size),
            num_workers=t.num_workers, persistent_workers=t.num_workers > 0,
        )  # fmt: skip

    def val_dataloader(self) -> DataLoader | list:
        """Whole validation clips as window batches (none without a validation set)."""
        if self.val_set is None:
            return []
        return DataLoader(
            self.val_set, batch_size=self.tcfg.eval_batch_size, collate_fn=eval_collate,
            num_workers=self.tcfg.num_workers,
        )  # fmt: skip


def lone_last_batch(n_examples: int, batch_size: int) -> bool:
    """Whether an epoch of ``n_examples`` in batches of ``batch_size`` ends with a batch of
    one example, which the training loader then drops: batch normalisation over a batch of
    one fails (``Expected more than 1 value per channel``) or normalises it to zero. Any
    other last batch is kept, so no example is lost more often than needed."""
    return batch_size > 1 and n_examples > batch_size and n_examples % batch_size == 1


def _finished_fold(result_file: Path, split, say: Say) -> FoldResult:
    """The stored result of a finished fold (``--resume``).

    Raises:
        ConfigError: the fold was trained with another number of ``extra_train`` clips.
    """
    done = FoldResult.from_json(json.loads(result_file.read_text()))
    had, has = int(done.extra.get("n_extra_train", 0)), len(getattr(split, "extra_train", ()))
    if had != has:
        raise ConfigError(
            f"[{split.name}] cannot resume: this fold was trained with {had} extra_train "
            f"clips and the config now gives {has}"
        )
    say(f"[{split.name}] already finished; reusing {result_file}")
    return done


def _fold_loggers(fold_dir: Path, kind: str) -> list:
    """``logs/`` in the chosen format, plus ``csv/`` when that is TensorBoard (the history
    of ``details.json`` is read from CSV)."""
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    if kind == "tensorboard":
        return [TensorBoardLogger(fold_dir, name="logs", version=0),
                CSVLogger(fold_dir, name="csv", version=0)]  # fmt: skip
    return [CSVLogger(fold_dir, name="logs", version=0)]


def _score_fold(classifier, clips, labels, train_idx, val_idx, test_idx, batch) -> tuple:
    """Clip-level losses and accuracies of the best model on its training and validation
    clips (the gap; extra training clips left out) and its test logits.

    Args:
        classifier: the trained classifier (eval mode, CPU).
        clips: ``clips(indices) -> EvalClips`` of the fold's audio.
        labels: label of every clip.
        train_idx, val_idx, test_idx: clip indices.
        batch: clips per evaluation batch.

    Returns:
        ``(gap dict, test logits (n_test, n_classes), test chunk accuracy)``: the last is the
        share of test windows classified right on their own (equal to the clip accuracy when
        every clip is one window).
    """
    tr_loss, tr_acc = loss_and_accuracy(
        predict_logits(classifier, clips(train_idx), batch, "cpu"), [labels[i] for i in train_idx]
    )
    va_loss = va_acc = float("nan")
    if val_idx:
        va_loss, va_acc = loss_and_accuracy(
            predict_logits(classifier, clips(val_idx), batch, "cpu"), [labels[i] for i in val_idx]
        )
    gap = {
        "train_loss": tr_loss, "val_loss": va_loss, "train_acc": tr_acc, "val_acc": va_acc,
        "loss_gap": va_loss - tr_loss, "acc_gap": tr_acc - va_acc,
    }  # fmt: skip
    chunks: dict[str, int] = {}
    test = predict_logits(classifier, clips(test_idx), batch, "cpu", chunks)
    chunk_acc = chunks["correct"] / chunks["total"] if chunks.get("total") else float("nan")
    return gap, test, chunk_acc


def _train_fold(
    dataset,
    audio,
    split,
    cfg: dict[str, Any],
    fold_dir: str | os.PathLike,
    resume: bool = False,
    say: Say = _stderr,
) -> FoldResult:
    """Train and evaluate one split.

    Args:
        dataset: :class:`~classify.datasets.base.ClipDataset`.
        audio: decoded audio indexable by clip index (``audio[i]`` -> ``(samples,)`` float32
            at ``cfg["frontend"]["sample_rate"]`` Hz), e.g.
            :class:`wb.training.audio_cache.AudioCache`.
        split: the :class:`~classify.datasets.base.Split` (train/test indices).
        cfg: resolved config with groups ``data``, ``frontend``, ``augment``, ``model``
            (``{"name": ..., **kwargs}``) and ``train``.
        fold_dir: folder for this fold's checkpoints, logs, model and ``result.json``.
        resume: continue from ``fold_dir/checkpoints/last.ckpt`` when present, and reuse a
            finished fold's ``result.json``.
        say: where progress lines go (stderr by default).

    Returns:
        :class:`FoldResult`; also written to ``fold_dir/result.json``.

    Raises:
        ConfigError: invalid settings, or ``resume`` of a finished fold trained with another
            number of ``extra_train`` clips. WbError: empty training or test set.
    """
    from pytorch_lightning.callbacks import EarlyStopping

    from wb.checkpoint import save_model

    fold_dir = Path(fold_dir)
    result_file = fold_dir / "result.json"
    if resume and result_file.is_file():
        return _finished_fold(result_file, split, say)
    t_start = time.time()
    tcfg = TrainConfig.from_dict(dict(cfg.get("train") or {}))
    policy = LengthPolicy(**dict(cfg.get("data") or {}))
    sr = int(cfg["frontend"]["sample_rate"])
    n_samples = policy.n_samples(sr)
    hop = policy.hop_samples(sr)
    labels = [c.label for c in dataset.clips]
    n_classes = len(dataset.classes)

    real_train, val_idx = _carve_validation(dataset, split, tcfg)
    extra = sorted(getattr(split, "extra_train", ()) or ())
    train_idx = real_train + extra
    if not train_idx or not split.test:
        raise WbError(f"{dataset.name}: split {split.name}: empty training or test set")
    pl.seed_everything(tcfg.seed, workers=True, verbose=False)
    _quiet_lightning()

    frontend_cfg = {k: v for k, v in dict(cfg["frontend"]).items() if k != "sample_rate"}
    classifier = Classifier(n_classes, sr, n_samples, frontend_cfg, dict(cfg["model"]))
    augment = Augmentation(sr, **dict(cfg.get("augment") or {}))
    say(
        f"[{split.name}] model {classifier.name}: {count_parameters(classifier):,} parameters; "
        f"train {len(real_train)}{f' + {len(extra)} extra' if extra else ''} / val "
        f"{len(val_idx)} / test {len(split.test)} clips; "
        f"input {n_samples / sr:g} s -> {classifier.frontend.n_bins}x{classifier.n_frames}"
    )
    center = LengthPolicy(**{**policy.to_dict(), "eval_crop": "center"})
    if classifier.frontend.norm is not None:
        fit_set = EvalClips(audio, train_idx, labels, n_samples, center, hop)
        loader = DataLoader(fit_set, batch_size=tcfg.eval_batch_size, collate_fn=eval_collate)
        classifier.frontend.fit_norm(w for w, _, _ in loader)
    if tcfg.init_from and not (resume and (fold_dir / "checkpoints" / "last.ckpt").is_file()):
        _warm_start(classifier, tcfg.init_from, list(dataset.classes), sr)

    accelerator = _accelerator(tcfg)
    precision = lightning_precision(tcfg.precision, accelerator)
    system = ClassifierSystem(
        classifier, augment, n_classes, tcfg.optim(), label_smoothing=tcfg.label_smoothing,
        seed=tcfg.seed, plateau_monitor="val/loss" if val_idx else "train/loss",
    )  # fmt: skip
    train_set = TrainClips(audio, train_idx, labels, n_samples, policy, tcfg.seed)
    val_set = EvalClips(audio, val_idx, labels, n_samples, policy, hop) if val_idx else None

    ckpt_dir = fold_dir / "checkpoints"
    monitor = tcfg.monitor if val_idx else "train/loss"
    mode = MONITORS.get(monitor, "min")
    callbacks: list[Any] = [EpochLine(say, split.name, tcfg.epochs)]
    if tcfg.patience and val_idx:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=tcfg.patience))
    quiet = quiet_default() or not sys.stderr.isatty()
    trainer, best_ckpt = make_trainer(
        fold_dir, monitor=monitor, mode=mode, max_epochs=tcfg.epochs, precision=precision,
        max_steps=tcfg.max_steps, time_limit_minutes=tcfg.time_limit_minutes,
        loggers=_fold_loggers(fold_dir, tcfg.logger), callbacks=callbacks,
        accelerator=accelerator, devices=tcfg.devices, num_nodes=tcfg.num_nodes,
        grad_clip=tcfg.grad_clip or None, accumulate=tcfg.accumulate,
        ema_decay=tcfg.ema_decay,
        log_every_n_steps=tcfg.log_every_n_steps, num_sanity_val_steps=0,
        progress_bar=not quiet, model_summary=False,
    )  # fmt: skip
    last = ckpt_dir / "last.ckpt"
    ckpt_path = str(last) if (resume and last.is_file()) else None
    if ckpt_path:
        say(f"[{split.name}] resuming from {last}")
    elif ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)
    fit(trainer, system, ClipDataModule(train_set, val_set, tcfg), ckpt_path)
    if not trainer.is_global_zero:
        return FoldResult(split.name, [], np.zeros((0, n_classes)), [], 0, 0, {}, [], 0, 0, 0, "")

    best_path = best_ckpt.best_model_path
    best_epoch = trainer.current_epoch - 1
    if best_path and Path(best_path).is_file():
        state = load_torch_file(best_path, "checkpoint")
        system.load_state_dict(state["state_dict"])
        best_epoch = int(state.get("epoch", best_epoch))
    classifier = system.classifier.cpu().eval()
    clips = partial(EvalClips, audio, labels=labels, n_samples=n_samples, policy=policy, hop=hop)
    gap, test_logits, chunk_acc = _score_fold(classifier, clips, labels, real_train, val_idx,
                                              split.test, tcfg.eval_batch_size)  # fmt: skip
    va_acc = gap["val_acc"]
    model_path = fold_dir / "model.pt"
    save_model(
        model_path,
        CLASS_REF,
        {
            "n_classes": n_classes, "sample_rate": sr, "n_samples": n_samples,
            "frontend": frontend_cfg, "model": dict(cfg["model"]),
        },
        classifier.state_dict(),
        meta={
            "classes": list(dataset.classes), "sample_rate": sr, "dataset": dataset.name,
            "fold": split.name, "length": policy.to_dict(), "best_epoch": best_epoch,
            "val_accuracy": None if math.isnan(va_acc) else va_acc,
        },
    )  # fmt: skip
    history = _read_history(fold_dir / ("logs" if tcfg.logger == "csv" else "csv"))
    result = FoldResult(
        name=split.name,
        test_indices=list(split.test),
        test_logits=test_logits,
        test_labels=[labels[i] for i in split.test],
        best_epoch=best_epoch,
        epochs_run=int(trainer.current_epoch),
        gap=gap,
        history=history,
        n_train=len(train_idx),
        n_val=len(val_idx),
        seconds=time.time() - t_start,
        model_path=str(model_path),
        val_accuracy=va_acc,
        extra={
            "chunk_accuracy": chunk_acc,
            "n_parameters": count_parameters(classifier),
            "precision": precision,
            "n_extra_train": len(extra),
        },
    )
    write_json(result_file, result.to_json())
    if not tcfg.keep_checkpoints and ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)
    return result


def train_fold(
    dataset,
    audio,
    split,
    cfg: dict[str, Any],
    fold_dir: str | os.PathLike,
    resume: bool = False,
    say: Say = _stderr,
) -> FoldResult:
    """Train and evaluate one split (see :func:`_train_fold` for the arguments).

    Sets torch's CPU thread count from ``train.threads`` for the fold and restores it after.
    """
    threads = int((cfg.get("train") or {}).get("threads") or 0)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _train_fold(dataset, audio, split, cfg, fold_dir, resume=resume, say=say)
    finally:
        torch.set_num_threads(before)


def _warm_start(classifier: Classifier, path: str, classes: list[str], sample_rate: int) -> None:
    """Copy the weights (front-end statistics included) of a classifier model file into
    ``classifier``: ``train.init_from``, a warm start with a fresh optimizer and schedule.

    A cross-validation ``model.pt`` has seen the other folds' test clips: warm-start a run on
    other data (or a held-out protocol) from it, not another cross-validation of the same set.

    Raises:
        WbError: not a classifier model file, other class names or sample rate, or weights
            of another architecture.
    """
    from wb.checkpoint import read_model

    data = read_model(path)
    meta = data.get("meta") or {}
    if list(meta.get("classes") or []) != list(classes):
        raise WbError(f"{path}: init_from model has other classes than this dataset")
    if int(meta.get("sample_rate") or 0) != int(sample_rate):
        raise WbError(
            f"{path}: init_from model runs at {meta.get('sample_rate')} Hz, not {sample_rate} Hz"
        )
    state = data["state_dict"]
    try:
        classifier.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        )
    except RuntimeError as exc:
        raise WbError(f"{path}: weights do not fit this classifier ({str(exc)[:120]})") from None


def _carve_validation(dataset, split, tcfg: TrainConfig) -> tuple[list[int], list[int]]:
    """Training and validation indices for a split (never touching its test indices)."""
    validate = list(getattr(split, "validate", ()) or ())
    if validate:
        return sorted(split.train), sorted(validate)
    if tcfg.val_fraction <= 0:
        return sorted(split.train), []
    from classify.datasets import validation_split

    mode = tcfg.val_groups
    if mode == "auto":
        train_groups = {dataset.clips[i].group for i in split.train}
        disjoint = not (train_groups & {dataset.clips[i].group for i in split.test})
        mode = "dataset" if disjoint else "clip"
    view = dataset if mode == "dataset" else _PerClipGroups(dataset)
    train, val = validation_split(view, split.train, tcfg.val_fraction, tcfg.seed)
    return list(train), list(val)


class _PerClipGroups:
    """A read-only view of a dataset in which every clip is its own leakage group."""

    def __init__(self, dataset) -> None:
        from dataclasses import replace

        self.name, self.classes = dataset.name, dataset.classes
        self.clips = [replace(c, group=f"#{i}") for i, c in enumerate(dataset.clips)]
