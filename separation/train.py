"""Train a separation model from a resolved recipe config (PyTorch Lightning).

Config groups read by :func:`train`. ``model:`` maps 1:1 to
:func:`separation.models.build`'s arguments; unknown keys in ``train:`` are errors (a typo
does not pass silently); other keys of ``data:`` (the prepare stage's) are ignored::

    data:                          # written by the recipe's prepare stage
      root: data/chorales          # <root>/<split>/<track>/{mixture,<source>...}.wav
      sample_rate: 16000           # Hz (default for model.sample_rate)
    model:
      name: htdemucs               # convtasnet | hdemucs | htdemucs
      sources: [soprano, alto, tenor, bass]  # output order (default: data.sources, else the
                                   # stems of the first training track, sorted)
      sample_rate: 16000           # Hz the model runs at (default data.sample_rate); stems
                                   # are resampled to it on loading
      audio_channels: 1            # default data.channels, else 1
      channels: 16                 # ... every other key: the model constructor's kwargs
    train:                         # SeparationTrainConfig: every key and its default
      epochs: 20

The run folder receives ``config.yml`` (the resolved config), ``checkpoints/best.ckpt`` (best
validation SI-SDR) and ``checkpoints/last.ckpt`` (end of the latest epoch: optimizer,
scheduler, epoch and callback state, used by ``resume=True``; always written at an epoch's end,
also when ``train.time_limit_minutes`` stops the run, so a resumed run continues exactly where an
uninterrupted one would), CSV logs
(``csv/version_<k>/metrics.csv``) and TensorBoard logs (``tensorboard/version_<k>/``); a resumed
run writes a new ``version_<k>`` so no log is overwritten.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from separation.data import StemsDataset, discover_sources
from separation.system import MONITOR, SCHEDULES, SeparationSystem
from wb.config import save_yaml
from wb.errors import ConfigError, WbError
from wb.lightning import precision
from wb.progress import quiet_default
from wb.training.config import TrainConfig
from wb.training.sampler import EpochSampler
from wb.training.trainer import fit, make_trainer, world_size
from wb.training.warm_start import init_weights


@dataclass
class SeparationTrainConfig(TrainConfig):
    """The ``train:`` group of separation recipes: :class:`wb.training.config.TrainConfig`
    (shared keys, separation defaults) plus the separation data and loss keys.

    Attributes:
        train_split, valid_split: split folders under ``data.root``.
        segment: seconds per training example (also the model's segment).
        samples_per_epoch: random training segments per epoch.
        gain_db: per-source random gain range in dB (the mixture is re-summed).
        swap_channels: randomly swap left/right per source (stereo).
        remix: every source of a training example from its own random track (Demucs).
        flip_polarity: random sign per source.
        proportional: draw tracks with probability proportional to their length.
        valid_segments_per_track: validation segments per track, spread evenly (``None``: all).
        audio_cache: folder for ``.npy`` copies of the decoded, resampled stems (``None``: RAM).
        limit_train_batches, limit_val_batches: Lightning's (int batches or float fraction).
        loss: ``l1`` on waveforms or ``sisdr`` (negative SI-SDR).
        pit: permutation-invariant loss (only for unordered sources).
    """

    epochs: int = 20
    batch_size: int = 4
    devices: int | str = "auto"
    lr: float = 3e-4
    grad_clip: float | None = 5.0
    train_split: str = "train"
    valid_split: str = "valid"
    segment: float = 4.0
    samples_per_epoch: int = 1000
    gain_db: tuple[float, float] = (-6.0, 3.0)
    swap_channels: bool = True
    remix: bool = False
    flip_polarity: bool = False
    proportional: bool = False
    valid_segments_per_track: int | None = 4
    audio_cache: str | None = None
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None
    loss: str = "l1"
    pit: bool = False

    def validate(self) -> None:
        """Shared checks plus the schedules the separation system supports.

        Raises:
            ConfigError: see :meth:`TrainConfig.validate`; a schedule other than cosine,
                plateau or none.
        """
        super().validate()
        self.check(SCHEDULES)


def train_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The ``train:`` group resolved over :class:`SeparationTrainConfig` (shared names; the
    former ones of :data:`wb.training.config.LEGACY_NAMES` are read too).

    Raises:
        ConfigError: an unknown key or an invalid value in ``train:``.
    """
    return SeparationTrainConfig.from_dict(cfg.get("train")).to_dict()


def resolve_model(cfg: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Resolve the model's builder arguments and the data location.

    Args:
        cfg: config with ``data`` and ``model`` groups (see the module doc).
        settings: :func:`train_settings` output (``segment``, ``train_split``).

    Returns:
        ``{"name", "sources", "sample_rate", "audio_channels", "kwargs", "root", "groups"}``
        (``groups``: ``data.groups``, stems summed into a source);
        ``kwargs`` are the constructor kwargs with ``segment`` set to ``train.segment``.

    Raises:
        ConfigError: no ``model.name``, no ``data.root``, no sample rate, or a
            ``model.segment`` that differs from ``train.segment``.
    """
    data = dict(cfg.get("data") or {})
    group = dict(cfg.get("model") or {})
    name = group.pop("name", None)
    if not name:
        raise ConfigError("model.name is required (convtasnet, hdemucs or htdemucs)")
    if data.get("root") in (None, ""):
        raise ConfigError("data.root is required")
    sources = group.pop("sources", None) or data.get("sources")
    if not sources:
        sources = discover_sources(data["root"], settings["train_split"])
    sample_rate = group.pop("sample_rate", None) or data.get("sample_rate")
    if not sample_rate:
        raise ConfigError("model.sample_rate (or data.sample_rate) is required")
    channels = group.pop("audio_channels", None) or data.get("channels") or 1
    segment = float(settings["segment"])
    if "segment" in group and float(group["segment"]) != segment:
        raise ConfigError(
            f"model.segment ({group['segment']}) must equal train.segment ({segment}): the model "
            "is trained on segments of that length"
        )
    group["segment"] = segment
    return {
        "name": str(name),
        "sources": [str(x) for x in sources],
        "sample_rate": int(sample_rate),
        "audio_channels": int(channels),
        "kwargs": group,
        "root": str(data["root"]),
        "groups": dict(data.get("groups") or {}),
    }


class StemsDataModule(pl.LightningDataModule):
    """Training (random augmented segments) and validation (fixed segments) loaders.

    Args:
        setup: :func:`resolve_model` output (data root, sources, rate, channels).
        settings: :func:`train_settings` output.
    """

    def __init__(self, setup: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
        super().__init__()
        self.model_setup, self.settings = dict(setup), dict(settings)
        self.train_set: StemsDataset | None = None
        self.valid_set: StemsDataset | None = None

    def _common(self) -> dict[str, Any]:
        m = self.model_setup
        return {
            "root": m["root"],
            "sources": m["sources"],
            "sample_rate": m["sample_rate"],
            "channels": m["audio_channels"],
            "cache_dir": self.settings["audio_cache"],
            "segment": self.settings["segment"],
            "groups": m.get("groups"),
        }

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets once (decoding every track; errors surface here)."""
        s = self.settings
        if self.train_set is None:
            self.train_set = StemsDataset(
                split=s["train_split"],
                mode="train",
                samples_per_epoch=s["samples_per_epoch"],
                gain_db=s["gain_db"],
                swap_channels=s["swap_channels"],
                remix=s["remix"],
                flip_polarity=s["flip_polarity"],
                proportional=s["proportional"],
                seed=s["seed"],
                **self._common(),
            )
        if self.valid_set is None:
            self.valid_set = StemsDataset(
                split=s["valid_split"],
                mode="segments",
                max_segments_per_track=s["valid_segments_per_track"],
                **self._common(),
            )

    def _loader(self, dataset: StemsDataset, sampler) -> DataLoader:
        workers = int(self.settings["num_workers"])
        return DataLoader(
            dataset,
            batch_size=int(self.settings["batch_size"]),
            sampler=sampler,
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            drop_last=False,
            persistent_workers=False,
        )

    def train_dataloader(self) -> DataLoader:
        """Random augmented segments, new ones every epoch, sharded over DDP ranks."""
        assert self.train_set is not None
        return self._loader(self.train_set, EpochSampler(len(self.train_set)))

    def val_dataloader(self) -> DataLoader:
        """Fixed validation segments, sharded over DDP ranks."""
        assert self.valid_set is not None
        return self._loader(self.valid_set, EpochSampler(len(self.valid_set), with_epoch=False))


def train(
    cfg: Mapping[str, Any],
    run_dir: str | os.PathLike,
    resume: bool = False,
    devices: int | str | list[int] | None = None,
    num_nodes: int | None = None,
) -> dict[str, Any]:
    """Train (or resume training) a separation model.

    Args:
        cfg: resolved config with ``data``, ``model`` and ``train`` groups (see module doc).
        run_dir: run folder; receives ``config.yml``, ``checkpoints/``, ``csv/``,
            ``tensorboard/``.
        resume: continue from ``run_dir/checkpoints/last.ckpt`` (optimizer, scheduler, epoch,
            global step and checkpoint-callback state); ``train.epochs`` may be raised to
            train further.
        devices: Lightning ``devices`` (count, list of GPU ids, or ``"auto"``; ``None``:
            ``train.devices``).
        num_nodes: Lightning ``num_nodes`` (``None``: ``train.num_nodes``). With more than one
            process in total the strategy is Lightning's DDP
            (``"ddp_find_unused_parameters_true"``); every rank draws distinct training
            segments and validation is sharded across ranks.

    Returns:
        ``{"best": path or None, "last": path, "best_sisdr": dB or None, "epochs": n}``.

    Raises:
        WbError: ``resume`` without ``last.ckpt``, or a fresh run into a folder that already
            holds checkpoints; dataset errors (missing split, missing stem).
        ConfigError: invalid config values.
    """
    from pytorch_lightning.callbacks import LearningRateMonitor
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    settings = train_settings(cfg)
    devices = settings["devices"] if devices is None else devices
    num_nodes = int(settings["num_nodes"] if num_nodes is None else num_nodes)
    setup = resolve_model(cfg, settings)
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if resume and not last.is_file():
        averaged = (run_dir / "average.json").is_file()
        hint = " (an averaged run: warm-start from it with train.init_from)" if averaged else ""
        raise WbError(f"{last}: no checkpoint to resume from{hint}")
    if not resume and (last.exists() or (ckpt_dir / "best.ckpt").exists()):
        raise WbError(f"{run_dir}: already holds checkpoints; resume it or choose a new run folder")

    resolved = copy.deepcopy(dict(cfg))
    resolved["model"] = {
        "name": setup["name"],
        "sources": setup["sources"],
        "sample_rate": setup["sample_rate"],
        "audio_channels": setup["audio_channels"],
        **setup["kwargs"],
    }
    resolved["train"] = settings
    lightning_precision = precision(str(settings["precision"]), str(settings["accelerator"]))
    run_dir.mkdir(parents=True, exist_ok=True)
    save_yaml(resolved, run_dir / "config.yml")

    if settings["threads"]:
        torch.set_num_threads(int(settings["threads"]))
    pl.seed_everything(int(settings["seed"]), workers=True, verbose=False)
    system = SeparationSystem.build(
        model_name=setup["name"],
        model_kwargs=setup["kwargs"],
        sources=setup["sources"],
        sample_rate=setup["sample_rate"],
        audio_channels=setup["audio_channels"],
        config=resolved,
        loss=settings["loss"],
        pit=settings["pit"],
        optim=SeparationTrainConfig.from_dict(settings).optim().to_dict(),
    )
    if settings["init_from"] and not resume:
        expect = {k: setup[k] for k in ("sources", "sample_rate", "audio_channels")}
        init_weights(system.model, settings["init_from"], expect, seed=int(settings["seed"]))
    datamodule = StemsDataModule(setup, settings)
    datamodule.setup("fit")  # dataset errors surface here, before Lightning starts

    loggers = [CSVLogger(run_dir, name="csv"), TensorBoardLogger(run_dir, name="tensorboard")]
    world = world_size(devices, num_nodes)
    per_epoch = -(-int(settings["samples_per_epoch"]) // (int(settings["batch_size"]) * world))
    limit = settings["limit_train_batches"]
    if isinstance(limit, int) and not isinstance(limit, bool):
        per_epoch = min(per_epoch, limit)
    trainer, checkpoint = make_trainer(
        run_dir, monitor=MONITOR, mode="max", max_epochs=int(settings["epochs"]),
        max_steps=settings["max_steps"],
        precision=lightning_precision, loggers=loggers,
        callbacks=[LearningRateMonitor(logging_interval="epoch")],
        accelerator=str(settings["accelerator"]), devices=devices, num_nodes=num_nodes,
        # some models (Conv-TasNet's last skip/residual pair) have parameters that do not
        # reach the loss, so DDP must look for unused parameters
        find_unused_parameters=True, time_limit_minutes=settings["time_limit_minutes"],
        grad_clip=settings["grad_clip"], accumulate=settings["accumulate"],
        ema_decay=settings["ema_decay"],
        log_every_n_steps=max(1, min(int(settings["log_every_n_steps"]), per_epoch)),
        num_sanity_val_steps=1, limit_train_batches=settings["limit_train_batches"],
        limit_val_batches=settings["limit_val_batches"],
        progress_bar=not quiet_default(), model_summary=not quiet_default(),
    )  # fmt: skip
    fit(trainer, system, datamodule, last if resume else None)
    best = checkpoint.best_model_path or None
    score = checkpoint.best_model_score
    return {
        "best": best,
        "last": str(last),
        "best_sisdr": float(score) if score is not None else None,
        "epochs": int(trainer.current_epoch),
    }
