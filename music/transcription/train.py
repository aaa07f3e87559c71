"""Train the voice-to-MIDI transcriber from a resolved recipe config (PyTorch Lightning).

Config groups read by :func:`train` (``recipes/voice2midi/conf.yml`` holds every key)::

    data:
      synthetic: data/voices          # <root>/<split>/<id>.flac + <id>.txt (prepare stage)
      ssvd: ../shared/data/ssvd/train_valid  # real recordings; the fixed split of
                                      # music.transcription.ssvd decides train / valid
      ssvd_weight: 0.5                # share of training windows drawn from SSVD train
      ssvd_dev: 0                     # SSVD train recordings held out to choose the checkpoint
    model: {...}                      # Transcriber kwargs (music.transcription.model)
    train: {...}                      # TranscriptionTrainConfig

The loss is the cross-entropy of the teacher-forced event tokens plus ``frame_weight`` times
the frame head's losses (pitch-class cross-entropy and onset binary cross-entropy): the frame
head is both a baseline and an auxiliary loss that speeds up the encoder's training. The
checkpoint monitor is the validation loss on the *synthetic* validation split, or, with
``data.ssvd_dev: n``, on ``n`` real recordings taken out of SSVD train (every window of each;
:func:`music.transcription.ssvd.split`). With ``train.select: conp`` it is instead the mean
COnP F1 of the frame head (the shipped decoder) over those same validation recordings,
transcribed whole at the end of every validation epoch (:func:`note_metrics`): the summed
loss can favour the event decoder while the frame head gets worse. The SSVD validation
recordings are kept for the evaluation stage and never choose a checkpoint.

The run folder receives ``config.yml``, ``checkpoints/{best,last}.ckpt``, CSV and TensorBoard
logs (as every recipe of the spine, :mod:`wb.training`).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from music.transcription.data import (
    NoteWindows,
    Recording,
    collate,
    find_pairs,
    load_recordings,
)
from music.transcription.model import Transcriber
from music.transcription.tokens import PAD
from wb.config import save_yaml
from wb.errors import ConfigError, WbError
from wb.lightning import precision
from wb.progress import quiet_default
from wb.training.config import OptimConfig, TrainConfig
from wb.training.sampler import EpochSampler
from wb.training.trainer import fit, make_trainer
from wb.training.warm_start import init_weights

MONITOR = "val/loss"
#: ``train.select`` -> (metric logged by :class:`TranscriptionSystem`, Lightning mode).
SELECTIONS = {"loss": (MONITOR, "min"), "conp": ("val/conp", "max")}
CLASS_REF = "music.transcription.model:Transcriber"


@dataclass
class TranscriptionTrainConfig(TrainConfig):
    """The ``train:`` group of the voice2midi recipe: :class:`wb.training.config.TrainConfig`
    plus the transcription data and loss keys.

    Attributes:
        samples_per_epoch: random training windows per epoch.
        valid_windows: most validation windows per synthetic validation recording.
        gain_db: random gain range in dB applied to peak-normalised windows.
        noise_probability: chance a training window gets added white/pink noise.
        noise_snr_db: SNR range of that noise in dB.
        shift_probability: chance a training window is speed-perturbed (pitch and tempo
            together, :class:`~music.transcription.data.NoteWindows`).
        shift_semitones: the largest such shift in semitones.
        frame_weight: weight of the frame head's losses.
        label_smoothing: of the token cross-entropy.
        select: what chooses ``best.ckpt``: ``loss`` (the validation loss, lowest) or
            ``conp`` (the frame head's mean COnP F1 over the whole validation recordings,
            highest; about 1 s of CPU per minute of validation audio each epoch).
    """

    epochs: int = 30
    batch_size: int = 16
    lr: float = 5e-4
    grad_clip: float | None = 1.0
    samples_per_epoch: int = 2000
    valid_windows: int | None = 4
    gain_db: tuple[float, float] = (-20.0, 0.0)
    noise_probability: float = 0.3
    noise_snr_db: tuple[float, float] = (10.0, 40.0)
    shift_probability: float = 0.0
    shift_semitones: float = 2.0
    frame_weight: float = 0.5
    label_smoothing: float = 0.05
    select: str = "loss"

    def validate(self) -> None:
        """:meth:`TrainConfig.validate` plus ``select``.

        Raises:
            ConfigError: a value out of range, an unknown ``select``, or ``select: conp``
                with ``ema_decay`` (the COnP F1 is computed after the weight average has
                been swapped out, so it would score other weights than ``best.ckpt`` keeps).
        """
        super().validate()
        if self.select not in SELECTIONS:
            raise ConfigError(
                f"train.select={self.select!r}: choose one of {', '.join(SELECTIONS)}"
            )
        if self.select == "conp" and self.ema_decay:
            raise ConfigError("train.select=conp does not work with train.ema_decay; use one")


class TranscriptionSystem(pl.LightningModule):
    """LightningModule around a :class:`Transcriber`: the steps, losses and metrics only.

    Args:
        model_kwargs: the Transcriber's constructor kwargs (saved as hyper-parameters, so
            export can rebuild it).
        optim: :class:`OptimConfig` fields as plain values.
        frame_weight, label_smoothing, select: see :class:`TranscriptionTrainConfig`
            (``select: conp`` needs :attr:`note_recordings` before fitting).
        config: the resolved run configuration (kept with the checkpoint).
    """

    def __init__(
        self,
        model_kwargs: Mapping[str, Any],
        optim: Mapping[str, Any],
        frame_weight: float = 0.5,
        label_smoothing: float = 0.05,
        config: Mapping[str, Any] | None = None,
        select: str = "loss",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = Transcriber(**dict(model_kwargs))
        self.optim = OptimConfig(**dict(optim))
        self.frame_weight, self.label_smoothing = float(frame_weight), float(label_smoothing)
        #: the metric and direction that choose ``best.ckpt`` (:data:`SELECTIONS`)
        self.monitor, self.mode = SELECTIONS[select]
        self.select = select
        #: whole recordings scored by :func:`note_metrics` after each validation epoch
        #: (``select: conp``).
        self.note_recordings: list[Recording] = []

    def _losses(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits, frames = self.model(batch["audio"], batch["tokens_in"])
        target = batch["tokens_out"]
        token = F.cross_entropy(
            logits.transpose(1, 2), target, ignore_index=PAD, label_smoothing=self.label_smoothing
        )
        n = self.model.vocab.n_pitches + 1
        pitch = F.cross_entropy(frames[..., :n].transpose(1, 2), batch["pitch"])
        onset = F.binary_cross_entropy_with_logits(
            frames[..., -1], batch["onset"], pos_weight=torch.tensor(5.0, device=frames.device)
        )
        mask = target != PAD
        acc = ((logits.argmax(-1) == target) & mask).sum() / mask.sum().clamp(min=1)
        loss = token + self.frame_weight * (pitch + onset)
        return {"loss": loss, "token": token, "pitch": pitch, "onset": onset, "token_acc": acc}

    def training_step(self, batch, batch_idx):
        """One teacher-forced step; logs ``train/loss`` and its parts."""
        out = self._losses(batch)
        b = batch["audio"].shape[0]
        self.log(
            "train/loss", out["loss"], on_step=True, on_epoch=True, prog_bar=True, batch_size=b
        )
        for k in ("token", "pitch", "onset"):
            self.log(f"train/{k}", out[k], on_epoch=True, on_step=False, batch_size=b)
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        """Validation losses and token accuracy (teacher-forced) on synthetic windows."""
        out = self._losses(batch)
        b = batch["audio"].shape[0]
        for k, v in out.items():
            self.log(
                f"val/{k}", v, on_epoch=True, prog_bar=k == "loss", batch_size=b, sync_dist=True
            )

    def on_validation_epoch_end(self) -> None:
        """Log ``val/conp``, ``val/conpoff`` and ``val/con`` (:func:`note_metrics`) when
        ``select`` is ``conp``; skipped in Lightning's sanity check."""
        if self.select != "conp" or self.trainer.sanity_checking:
            return
        for k, v in note_metrics(self.model, self.note_recordings).items():
            self.log(f"val/{k}", v, sync_dist=True, prog_bar=k == "conp")

    def configure_optimizers(self):
        """AdamW with the configured schedule (a plateau schedule follows the selection
        metric)."""
        return self.optim.configure(
            self.parameters(), total_steps=int(self.trainer.estimated_stepping_batches),
            epochs=int(self.trainer.max_epochs or 1), monitor=self.monitor, mode=self.mode,
        )  # fmt: skip


def note_metrics(model: Transcriber, recordings: list[Recording]) -> dict[str, float]:
    """Mean note F1 of the frame head over whole recordings (training-time selection).

    Each recording is transcribed as ``wb transcribe --decoder frames`` would
    (:func:`~music.transcription.inference.transcribe_array`, :func:`frames_to_notes`
    defaults) and scored with :func:`~music.transcription.metrics.note_scores` (reference
    pitches rounded, as for SSVD).

    Args:
        model: the transcriber (left in eval mode).
        recordings: :class:`Recording` items, audio ``(samples,)`` at ``model.sample_rate``.

    Returns:
        ``{"conp": ..., "conpoff": ..., "con": ...}``, F1 means over the recordings in [0, 1].

    Raises:
        WbError: no recordings.
    """
    from music.transcription.inference import transcribe_array
    from music.transcription.metrics import note_scores

    if not recordings:
        raise WbError("note_metrics: no recordings to score")
    rows = [
        note_scores(rec.notes, transcribe_array(model, rec.audio, method="frames"))
        for rec in recordings
    ]
    return {k: float(np.mean([r[f"{k}_f"] for r in rows])) for k in ("conp", "conpoff", "con")}


def train_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The ``train:`` group resolved over :class:`TranscriptionTrainConfig`.

    Raises:
        ConfigError: an unknown key or an invalid value.
    """
    return TranscriptionTrainConfig.from_dict(cfg.get("train")).to_dict()


def model_kwargs(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The ``model:`` group checked against :class:`Transcriber` (built once here).

    Raises:
        ConfigError: an unknown or invalid model key.
    """
    kwargs = dict(cfg.get("model") or {})
    try:
        Transcriber(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model: {exc}") from None
    return kwargs


class VoiceDataModule(pl.LightningDataModule):
    """Training windows (synthetic train + SSVD train, weighted) and validation windows:
    every window of the SSVD development recordings when ``data.ssvd_dev`` > 0; else the
    synthetic valid split; without either, consecutive windows of the SSVD training
    recordings, which then measure the training fit only.

    Args:
        data: the ``data:`` group; settings: :func:`train_settings`; model: the built model
            (rate, window, frames).
    """

    def __init__(self, data: Mapping[str, Any], settings: Mapping[str, Any], model: Transcriber):
        super().__init__()
        self.data, self.settings, self.model = dict(data), dict(settings), model
        self.train_set: NoteWindows | None = None
        self.valid_set: NoteWindows | None = None
        #: the whole validation recordings behind :attr:`valid_set`
        self.valid_recordings: list[Recording] = []

    def setup(self, stage: str | None = None) -> None:
        """Decode every recording once (errors surface here)."""
        if self.train_set is not None:
            return
        from music.transcription import ssvd

        d, s, m = self.data, self.settings, self.model
        sr = m.sample_rate
        groups, weights = [], []
        w_real = float(d.get("ssvd_weight", 0.5))
        try:
            n_dev = int(d.get("ssvd_dev") or 0)
        except (TypeError, ValueError):
            raise ConfigError(
                f"data.ssvd_dev must be a whole number, got {d.get('ssvd_dev')!r}"
            ) from None
        if n_dev and not d.get("ssvd"):
            raise ConfigError("data.ssvd_dev needs data.ssvd (the SSVD train_valid folder)")
        parts = ssvd.split(d["ssvd"], dev=n_dev) if d.get("ssvd") else {}
        if d.get("synthetic") and w_real < 1:
            root = Path(d["synthetic"])
            groups.append(load_recordings(find_pairs(root / "train"), sr, "synthetic train"))
            weights.append(1 - w_real)
        if d.get("ssvd") and w_real > 0:
            groups.append(load_recordings(parts["train"], sr, "SSVD train"))
            weights.append(w_real)
        if not groups:
            raise ConfigError("data: set data.synthetic and/or data.ssvd to train on")
        common = {"vocab": m.vocab, "sample_rate": sr, "frames": m.frames,
                  "frame_seconds": m.frame_seconds}  # fmt: skip
        self.train_set = NoteWindows(
            groups, mode="train", weights=weights, length=int(s["samples_per_epoch"]),
            gain_db=tuple(s["gain_db"]), noise_probability=float(s["noise_probability"]),
            noise_snr_db=tuple(s["noise_snr_db"]), seed=int(s["seed"]),
            shift_probability=float(s["shift_probability"]),
            shift_semitones=float(s["shift_semitones"]), **common,
        )  # fmt: skip
        max_windows = s["valid_windows"]
        if n_dev:
            valid, max_windows = load_recordings(parts["dev"], sr, "SSVD dev"), None
        elif d.get("synthetic"):
            valid = load_recordings(
                find_pairs(Path(d["synthetic"]) / "valid"), sr, "synthetic valid"
            )
        else:  # SSVD only (a warm-up): no held-out windows; val/loss is then the training fit
            valid = groups[-1]
        self.valid_recordings = list(valid)
        self.valid_set = NoteWindows([valid], mode="eval", max_windows=max_windows, **common)

    def _loader(self, dataset, sampler) -> DataLoader:
        return DataLoader(
            dataset, batch_size=int(self.settings["batch_size"]), sampler=sampler,
            num_workers=int(self.settings["num_workers"]),
            collate_fn=partial(collate, max_tokens=self.model.max_tokens),
        )  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        """Random windows, new ones every epoch."""
        assert self.train_set is not None
        return self._loader(self.train_set, EpochSampler(len(self.train_set)))

    def val_dataloader(self) -> DataLoader:
        """Fixed validation windows."""
        assert self.valid_set is not None
        return self._loader(self.valid_set, EpochSampler(len(self.valid_set), with_epoch=False))


def train(
    cfg: Mapping[str, Any], run_dir: str | os.PathLike, resume: bool = False
) -> dict[str, Any]:
    """Train (or resume) a transcriber.

    Args:
        cfg: resolved config with ``data``, ``model`` and ``train`` groups.
        run_dir: the run folder.
        resume: continue from ``run_dir/checkpoints/last.ckpt``.

    Returns:
        ``{"best": path or None, "last": path, "best_score": float or None, "monitor":
        the metric that chose ``best`` (``val/loss`` or ``val/conp``)}``.

    Raises:
        WbError: resume without a checkpoint, a fresh run into a folder with checkpoints,
            ``init_from`` weights that do not fit; dataset errors. ConfigError: bad values.
    """
    from pytorch_lightning.callbacks import LearningRateMonitor
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    settings = train_settings(cfg)
    kwargs = model_kwargs(cfg)
    run_dir = Path(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume and not last.is_file():
        raise WbError(f"{last}: no checkpoint to resume from")
    if not resume and last.exists():
        raise WbError(f"{run_dir}: already holds checkpoints; resume it or choose a new run folder")
    resolved = copy.deepcopy(dict(cfg))
    resolved["model"], resolved["train"] = kwargs, settings
    run_dir.mkdir(parents=True, exist_ok=True)
    save_yaml(resolved, run_dir / "config.yml")
    if settings["threads"]:
        torch.set_num_threads(int(settings["threads"]))
    pl.seed_everything(int(settings["seed"]), workers=True, verbose=False)
    system = TranscriptionSystem(
        kwargs, TranscriptionTrainConfig.from_dict(settings).optim().to_dict(),
        frame_weight=settings["frame_weight"], label_smoothing=settings["label_smoothing"],
        config=resolved, select=settings["select"],
    )  # fmt: skip
    if settings["init_from"] and not resume:
        init_weights(system.model, settings["init_from"], seed=int(settings["seed"]))
    datamodule = VoiceDataModule(cfg.get("data") or {}, settings, system.model)
    datamodule.setup("fit")
    system.note_recordings = datamodule.valid_recordings
    loggers = [CSVLogger(run_dir, name="csv"), TensorBoardLogger(run_dir, name="tensorboard")]
    per_epoch = -(-int(settings["samples_per_epoch"]) // int(settings["batch_size"]))
    trainer, checkpoint = make_trainer(
        run_dir, monitor=system.monitor, mode=system.mode, max_epochs=int(settings["epochs"]),
        max_steps=settings["max_steps"], precision=precision(str(settings["precision"]),
        str(settings["accelerator"])), loggers=loggers,
        callbacks=[LearningRateMonitor(logging_interval="epoch")],
        accelerator=str(settings["accelerator"]), devices=settings["devices"],
        num_nodes=int(settings["num_nodes"]), time_limit_minutes=settings["time_limit_minutes"],
        grad_clip=settings["grad_clip"], accumulate=settings["accumulate"],
        ema_decay=settings["ema_decay"],
        log_every_n_steps=max(1, min(int(settings["log_every_n_steps"]), per_epoch)),
        num_sanity_val_steps=1, progress_bar=not quiet_default(),
    )  # fmt: skip
    fit(trainer, system, datamodule, last if resume else None)
    score = checkpoint.best_model_score
    return {
        "best": checkpoint.best_model_path or None,
        "last": str(last),
        "best_score": None if score is None else float(score),
        "monitor": system.monitor,
    }


def export(
    checkpoint: str | os.PathLike, dest: str | os.PathLike, meta: Mapping[str, Any] | None = None
) -> Path:
    """Write the model of a training checkpoint as a small model file (weights only, float16).

    Raises:
        WbError: not a checkpoint of :class:`TranscriptionSystem`.
    """
    from wb.checkpoint import load_torch_file, save_model

    data = load_torch_file(checkpoint, "checkpoint")
    hp = data.get("hyper_parameters") if isinstance(data, dict) else None
    if not isinstance(hp, Mapping) or "model_kwargs" not in hp:
        raise WbError(f"{checkpoint}: not a voice2midi training checkpoint")
    state = {k[6:]: v for k, v in data["state_dict"].items() if k.startswith("model.")}
    info = {"window": hp["model_kwargs"].get("window", 4.0), **dict(meta or {})}
    return save_model(dest, CLASS_REF, hp["model_kwargs"], state, info, half=True)
