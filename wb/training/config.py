"""One ``train:`` config group for every recipe family.

:class:`TrainConfig` holds what every trainer needs (optimizer, schedule, epochs or steps,
time limit, clipping, precision, seed, threads, devices); a family subclasses it to add its
own keys (``separation.train.SeparationTrainConfig``, ``classify.train.TrainConfig``) and to
set its defaults, so the shared keys have one name everywhere. Names used before the spine
existed (``max_epochs``, ``scheduler``, ``clip_grad``, ``max_time_minutes``) are still read, so
old run folders resume; they are written back under the new names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from wb.errors import ConfigError

#: Schedules :class:`OptimConfig` knows (see :func:`wb.training.schedules.configure_schedule`).
SCHEDULES = ("none", "constant", "cosine", "onecycle", "plateau")

#: Former names of :class:`TrainConfig` keys, still accepted on reading.
LEGACY_NAMES = {
    "max_epochs": "epochs",
    "scheduler": "schedule",
    "clip_grad": "grad_clip",
    "max_time_minutes": "time_limit_minutes",
}


def rename_legacy(train: dict[str, Any]) -> dict[str, Any]:
    """A copy of a ``train:`` group with the former key names of :data:`LEGACY_NAMES` renamed
    (a key given under both names is left for :meth:`TrainConfig.from_dict` to refuse)."""
    out = dict(train)
    for old, new in LEGACY_NAMES.items():
        if old in out and new not in out:
            out[new] = out.pop(old)
    return out


def rename_legacy_override(item: str) -> str:
    """``train.max_epochs=3`` -> ``train.epochs=3`` (any :data:`LEGACY_NAMES` key; a leading
    ``+`` is kept); other overrides unchanged."""
    plus = "+" if item.startswith("+") else ""
    key, sep, value = item[len(plus) :].partition("=")
    group, dot, name = key.partition(".")
    if group == "train" and dot and name in LEGACY_NAMES:
        return f"{plus}train.{LEGACY_NAMES[name]}{sep}{value}"
    return item


@dataclass
class OptimConfig:
    """AdamW and its learning-rate schedule (:func:`wb.training.schedules.configure_schedule`).

    Attributes:
        lr: peak learning rate.
        weight_decay: AdamW decoupled weight decay (Loshchilov & Hutter 2019).
        betas: AdamW betas.
        schedule: one of :data:`wb.training.schedules.SCHEDULES`.
        warmup_steps: linear warm-up in optimizer steps; or
        warmup_epochs: linear warm-up in epochs (at most one of the two is non-zero).
        min_lr_ratio: cosine floor as a fraction of ``lr``;
        min_lr: absolute floor (cosine and plateau), wins over ``min_lr_ratio`` when set.
        plateau_factor: LR multiplier of the plateau schedule.
        plateau_patience: epochs without improvement before the plateau schedule reduces.
    """

    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "cosine"
    warmup_steps: int = 0
    warmup_epochs: float = 0.0
    min_lr_ratio: float = 0.01
    min_lr: float | None = None
    plateau_factor: float = 0.5
    plateau_patience: int = 3

    def check(self, allowed: tuple[str, ...] = SCHEDULES) -> None:
        """Validate the values.

        Raises:
            ConfigError: unknown schedule, negative lr, both warm-up kinds set.
        """
        if self.schedule not in allowed:
            raise ConfigError(f"train.schedule={self.schedule!r}: choose from {', '.join(allowed)}")
        if not float(self.lr) >= 0:
            raise ConfigError(f"train.lr must be >= 0, got {self.lr}")
        if self.warmup_steps and self.warmup_epochs:
            raise ConfigError("set train.warmup_steps or train.warmup_epochs, not both")

    def floor_ratio(self) -> float:
        """The cosine floor as a fraction of ``lr``."""
        if self.min_lr is None or not self.lr:
            return self.min_lr_ratio
        return float(self.min_lr) / float(self.lr)

    def warmup(self, total_steps: int, epochs: int) -> int:
        """Warm-up length in optimizer steps for a run of ``total_steps`` over ``epochs``."""
        if self.warmup_steps:
            return int(self.warmup_steps)
        per_epoch = max(1, int(total_steps) // max(1, int(epochs)))
        return int(round(float(self.warmup_epochs) * per_epoch))

    def to_dict(self) -> dict[str, Any]:
        """Plain values for a saved ``config.yml`` (tuples become lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    def configure(
        self,
        params,
        *,
        total_steps: int,
        epochs: int,
        monitor: str | None = None,
        mode: str = "min",
    ) -> Any:
        """AdamW over ``params`` (parameters or param groups) plus the schedule: what
        ``LightningModule.configure_optimizers`` returns.

        Raises:
            ConfigError: an unknown schedule, or ``plateau`` without ``monitor``.
        """
        import torch

        from wb.training.schedules import configure_schedule

        opt = torch.optim.AdamW(
            params, lr=self.lr, weight_decay=self.weight_decay, betas=tuple(self.betas)
        )
        return configure_schedule(
            opt, self.schedule, total_steps=total_steps,
            warmup_steps=self.warmup(total_steps, epochs), min_lr_ratio=self.floor_ratio(),
            monitor=monitor, mode=mode, plateau_factor=self.plateau_factor,
            plateau_patience=self.plateau_patience, plateau_min_lr=float(self.min_lr or 0.0),
        )  # fmt: skip


@dataclass
class TrainConfig(OptimConfig):
    """The ``train:`` group: :class:`OptimConfig` plus the run's length and resources.

    Attributes:
        epochs: epochs to train (the maximum, with early stopping).
        max_steps: stop after this many optimizer steps (``None``: no limit).
        time_limit_minutes: stop at the first epoch end past this wall time (a resumed run
            gets a new budget).
        batch_size: training examples per batch and process.
        grad_clip: gradient-norm clipping threshold (``None`` or 0: off).
        accumulate: gradient accumulation steps.
        precision: ``auto`` (bf16/fp16 mixed on CUDA, fp32 elsewhere) or a Lightning name.
        seed: seed of weights, sampling and augmentation.
        threads: torch CPU threads (``None`` or 0: torch's default).
        accelerator: ``auto``, ``cpu`` or ``gpu``.
        devices: devices per node, or ``"auto"`` (more than one process in all uses
            Lightning DDP).
        num_nodes: machines (DDP over all of them; started by torchrun or SLURM).
        num_workers: DataLoader worker processes.
        log_every_n_steps: Lightning's logging interval.
        init_from: a model file (separation also takes a training checkpoint) whose weights
            start a fresh run (a warm start with a new optimizer and schedule; ignored on
            resume).
        ema_decay: keep an exponential moving average of the weights with this decay per
            optimizer step (``None`` or 0: off); validation, ``best.ckpt`` and the exported
            weights then use the average (Lightning's ``EMAWeightAveraging``; Demucs trains
            with weight EMA, Defossez 2021).
    """

    epochs: int = 20
    max_steps: int | None = None
    time_limit_minutes: float | None = None
    batch_size: int = 16
    grad_clip: float | None = None
    accumulate: int = 1
    precision: str = "auto"
    seed: int = 0
    threads: int | None = None
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    num_workers: int = 0
    log_every_n_steps: int = 10
    init_from: str | None = None
    ema_decay: float | None = None

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any] | None) -> TrainConfig:
        """Build from the ``train:`` group (legacy names of :data:`LEGACY_NAMES` accepted).

        Raises:
            ConfigError: unknown key, a key given under both its names, or an invalid value.
        """
        given = dict(cfg or {})
        for old, new in LEGACY_NAMES.items():
            if old in given:
                if new in given:
                    raise ConfigError(f"train: {old} is the former name of {new}; give one")
                given[new] = given.pop(old)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ConfigError(
                f"train: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        if "betas" in given:
            given["betas"] = tuple(given["betas"])
        # a family's default for one of a pair must not clash with the other given alone
        if "warmup_steps" in given and "warmup_epochs" not in given:
            given["warmup_epochs"] = 0.0
        if "warmup_epochs" in given and "warmup_steps" not in given:
            given["warmup_steps"] = 0
        if "min_lr_ratio" in given and "min_lr" not in given:
            given["min_lr"] = None
        try:
            out = cls(**given)
        except TypeError as exc:
            raise ConfigError(f"train: {exc}") from None
        out.validate()
        return out

    def validate(self) -> None:
        """Check the values (subclasses extend it).

        Raises:
            ConfigError: a value out of range.
        """
        self.check()
        for name in ("epochs", "batch_size", "accumulate", "devices", "num_nodes"):
            value = getattr(self, name)
            if name == "devices" and not isinstance(value, int):
                continue  # "auto", "0,1": Lightning checks them
            if int(value) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.ema_decay and not 0.0 < float(self.ema_decay) < 1.0:
            raise ConfigError(f"train.ema_decay must be in (0, 1) or 0 (off), got {self.ema_decay}")

    def optim(self) -> OptimConfig:
        """The :class:`OptimConfig` part."""
        return OptimConfig(**{f.name: getattr(self, f.name) for f in fields(OptimConfig)})
