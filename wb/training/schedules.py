"""One learning-rate schedule builder for every LightningModule's ``configure_optimizers``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from wb.errors import ConfigError
from wb.training.config import SCHEDULES

# The schedules (SCHEDULES): ``none``, the optimizer's learning rate throughout; ``constant``,
# linear warm-up then flat; ``cosine``, linear warm-up then half-cosine decay to
# ``min_lr_ratio * lr`` (Loshchilov & Hutter 2017, SGDR without restarts); ``onecycle``,
# torch's OneCycleLR (Smith 2018); ``plateau``, ReduceLROnPlateau per epoch.


def warmup_cosine(warmup_steps: int, total_steps: int, floor: float) -> Callable[[int], float]:
    """LR factor of step ``s``: ``(s + 1) / warmup`` during warm-up, then a half cosine from 1
    to ``floor`` over the remaining steps (held at ``floor`` after ``total_steps``)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

    return factor


def configure_schedule(
    optimizer: torch.optim.Optimizer,
    schedule: str,
    *,
    total_steps: int,
    warmup_steps: int = 0,
    min_lr_ratio: float = 0.0,
    monitor: str | None = None,
    mode: str = "min",
    plateau_factor: float = 0.5,
    plateau_patience: int = 3,
    plateau_min_lr: float = 0.0,
) -> Any:
    """What ``LightningModule.configure_optimizers`` returns for ``schedule``.

    Args:
        optimizer: the optimizer (its ``lr`` is the peak learning rate).
        schedule: one of :data:`SCHEDULES`.
        total_steps: optimizer steps of the whole run (``trainer.estimated_stepping_batches``).
        warmup_steps: linear warm-up steps (``constant``, ``cosine``; ``onecycle`` uses their
            share as ``pct_start``, clipped to 0.01..0.5).
        min_lr_ratio: ``cosine`` floor as a fraction of the peak learning rate.
        monitor: logged metric for ``plateau``.
        mode: ``min`` or ``max`` for ``monitor``.
        plateau_factor, plateau_patience, plateau_min_lr: ``ReduceLROnPlateau`` arguments.

    Returns:
        the optimizer alone, or ``{"optimizer", "lr_scheduler": {...}}`` (step interval for
        the per-step schedules, epoch interval for ``plateau``).

    Raises:
        ConfigError: an unknown schedule, or ``plateau`` without ``monitor``.
    """
    total = max(1, int(total_steps))
    warm = max(0, int(warmup_steps))
    if schedule == "none" or (schedule == "constant" and not warm):
        return optimizer
    if schedule == "constant":
        sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm))
    elif schedule == "cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(warm, total, float(min_lr_ratio))
        )
    elif schedule == "onecycle":
        peak = optimizer.param_groups[0]["lr"]
        sched = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=peak, total_steps=total,
            pct_start=min(0.5, max(warm / total, 0.01)), anneal_strategy="cos",
        )  # fmt: skip
    elif schedule == "plateau":
        if not monitor:
            raise ConfigError("schedule plateau needs a monitored metric")
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=plateau_factor, patience=plateau_patience,
            min_lr=plateau_min_lr,
        )  # fmt: skip
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": sched, "interval": "epoch", "monitor": monitor},
        }
    else:
        raise ConfigError(f"unknown schedule {schedule!r} (choose from {', '.join(SCHEDULES)})")
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
