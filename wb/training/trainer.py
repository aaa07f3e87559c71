"""One Trainer factory: checkpoints, exact resume, epoch-end time limit, loggers, DDP.

:func:`make_trainer` builds the :class:`pytorch_lightning.Trainer` every recipe family uses;
:func:`fit` runs or resumes it. What differs between families (their LightningModule, data
and extra callbacks such as early stopping) is passed in.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EMAWeightAveraging


class EpochTimeLimit(pl.Callback):
    """Stop training at the first epoch end after ``minutes`` of wall time.

    Unlike Lightning's ``max_time`` (which stops mid-epoch, leaving a ``last.ckpt`` whose resumed
    epoch would replay batches: :class:`~wb.training.sampler.EpochSampler` has no mid-epoch
    state), this only checks the time in ``on_train_epoch_end`` and then sets
    ``trainer.should_stop``, so every checkpoint is an end-of-epoch one. The run may overrun the
    limit by up to one epoch (plus its validation). The clock counts this process's run only
    (it restarts on resume).

    Args:
        minutes: wall-time budget in minutes.
    """

    def __init__(self, minutes: float) -> None:
        self.seconds = float(minutes) * 60.0
        self._start: float | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start the clock."""
        self._start = time.monotonic()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Stop once the budget is spent (rank 0's clock decides for every DDP rank)."""
        if self._start is None:
            self._start = time.monotonic()
        over = trainer.strategy.broadcast(time.monotonic() - self._start >= self.seconds)
        if over:
            trainer.should_stop = True


class DeviceEMA(EMAWeightAveraging):
    """Lightning's ``EMAWeightAveraging`` with the average moved to the module's device once
    the strategy has placed the module (``on_fit_start``).

    The callback builds its ``AveragedModel`` in ``setup``, before the module leaves the
    CPU, so on a GPU the average would otherwise stay in host memory and be copied across
    every step. Arguments are ``EMAWeightAveraging``'s (``decay``, ``use_buffers``, ...).
    """

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Move the average to ``pl_module.device``."""
        if self._average_model is not None:
            self._average_model.to(pl_module.device)


class RanksAgree(pl.Callback):
    """Under DDP, check at the end of training that every rank holds the same weights.

    Each rank reduces its parameters to a float64 checksum; rank 0 gathers them and the run
    fails (:class:`~wb.errors.WbError` on every rank) if any differs, which would mean the
    ranks trained different models (a broken all-reduce or a rank-dependent branch).
    ``agreed`` is set on success.
    """

    def __init__(self) -> None:
        self.agreed: bool | None = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Gather and compare the checksums (a no-op in a single process)."""
        import torch

        from wb.errors import WbError

        if trainer.world_size < 2:
            return
        params = list(pl_module.parameters())
        if not params:
            return
        total = torch.zeros((), dtype=torch.float64, device=params[0].device)
        for p in params:
            total += p.detach().double().sum() + p.detach().double().abs().sum() * 1e-3
        sums = trainer.strategy.all_gather(total)
        if not torch.allclose(sums, sums[0], rtol=1e-9, atol=0.0):
            raise WbError(f"DDP ranks hold different weights (checksums {sums.tolist()})")
        self.agreed = True
        if trainer.is_global_zero:
            print(f"{trainer.world_size} DDP ranks agree (weights checksum {float(sums[0]):.6f})")


def checkpoint_callbacks(ckpt_dir: str | os.PathLike, monitor: str, mode: str) -> tuple:
    """``best.ckpt`` (best ``monitor`` so far) and ``last.ckpt`` (every epoch) callbacks.

    Lightning >= 2.5 writes ``save_last=True``'s ``last.ckpt`` only when a top-k checkpoint
    is written in the same step, so after a kill ``--resume`` would restart from the best
    epoch, not the last one. A second :class:`~pytorch_lightning.callbacks.ModelCheckpoint`
    without a monitor keeps the newest epoch's checkpoint as ``last.ckpt`` instead (Lightning
    writes checkpoints through a temporary file and a rename).

    Args:
        ckpt_dir: folder of both files.
        monitor: logged metric that picks ``best.ckpt``.
        mode: ``"min"`` or ``"max"`` for ``monitor``.

    Returns:
        ``(best, last)`` callbacks; ``best.best_model_path`` / ``best_model_score`` as usual.
    """
    from pytorch_lightning.callbacks import ModelCheckpoint

    best = ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor=monitor, mode=mode, save_top_k=1,
        enable_version_counter=False, auto_insert_metric_name=False,
    )  # fmt: skip
    last = ModelCheckpoint(
        dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1, every_n_epochs=1,
        enable_version_counter=False,
    )  # fmt: skip
    return best, last


def world_size(devices: int | str | list[int], num_nodes: int = 1) -> int:
    """Processes in all for Lightning's ``devices`` (count, ``"0,1"``, list, ``-1`` or
    ``"auto"``: every visible GPU, at least one) times ``num_nodes``.

    Returns:
        the number of processes (at least 1 per node).
    """
    import torch

    if isinstance(devices, int):
        per_node = devices if devices > 0 else max(1, torch.cuda.device_count())
    elif isinstance(devices, list | tuple):
        per_node = len(devices)
    elif isinstance(devices, str) and devices.strip().isdigit():
        per_node = int(devices)
    elif isinstance(devices, str) and "," in devices:
        per_node = len([d for d in devices.split(",") if d.strip()])
    else:
        per_node = max(1, torch.cuda.device_count())
    return per_node * int(num_nodes)


def make_trainer(
    run_dir: str | os.PathLike,
    *,
    monitor: str,
    mode: str,
    max_epochs: int,
    precision: str,
    max_steps: int | None = None,
    loggers: Sequence[Any],
    callbacks: Sequence[pl.Callback] = (),
    accelerator: str = "auto",
    devices: int | str | list[int] = 1,
    num_nodes: int = 1,
    find_unused_parameters: bool = False,
    time_limit_minutes: float | None = None,
    grad_clip: float | None = None,
    accumulate: int = 1,
    log_every_n_steps: int = 10,
    num_sanity_val_steps: int = 0,
    limit_train_batches: int | float | None = None,
    limit_val_batches: int | float | None = None,
    progress_bar: bool = True,
    model_summary: bool = False,
    ema_decay: float | None = None,
) -> tuple[pl.Trainer, Any]:
    """A Lightning Trainer with the project's checkpoints, time limit and DDP settings.

    Every run gets ``<run_dir>/checkpoints/best.ckpt`` (best ``monitor``) and ``last.ckpt``
    (end of the latest epoch: optimizer, scheduler, epoch and callback state for exact resume,
    see :func:`checkpoint_callbacks`). More than one process in all (``devices`` x
    ``num_nodes``) uses Lightning DDP; the project's samplers shard by rank themselves, so
    Lightning's distributed sampler is off.

    Args:
        run_dir: the run folder (Lightning's ``default_root_dir``).
        monitor, mode: metric and direction of ``best.ckpt``.
        max_epochs: epochs to train.
        max_steps: stop after this many optimizer steps (``None``: no limit).
        precision: Lightning precision (:func:`wb.lightning.precision`).
        loggers: Lightning loggers.
        callbacks: further callbacks (early stopping, progress lines, LR monitor).
        accelerator, devices, num_nodes: Lightning's; ``devices`` may be ``"auto"``.
        find_unused_parameters: DDP looks for parameters that do not reach the loss.
        time_limit_minutes: stop at the first epoch end past this (:class:`EpochTimeLimit`).
        grad_clip: gradient-norm clipping threshold (``None`` or 0: off).
        accumulate: gradient accumulation steps.
        log_every_n_steps, num_sanity_val_steps, limit_train_batches, limit_val_batches:
            Lightning's.
        progress_bar, model_summary: Lightning's ``enable_*`` switches.
        ema_decay: per-step decay of an exponential moving average of the weights
            (:class:`pytorch_lightning.callbacks.EMAWeightAveraging`, buffers included;
            ``None`` or 0: off). Validation runs on the average, ``best.ckpt`` and
            ``last.ckpt`` hold it as ``state_dict`` (the raw weights under
            ``current_model_state``, so a resume with EMA on continues both; a resume with it
            off continues from the average), and the module holds it after training.
            Metrics a module computes in its own ``on_validation_epoch_end`` see the raw
            weights (Lightning restores them in the callback's hook, which runs first).

    Returns:
        ``(trainer, best)``: the trainer and the ``best.ckpt`` callback (``best_model_path``,
        ``best_model_score``).
    """
    best, last = checkpoint_callbacks(Path(run_dir) / "checkpoints", monitor, mode)
    extra: list[pl.Callback] = []
    if time_limit_minutes:
        extra.append(EpochTimeLimit(float(time_limit_minutes)))
    if ema_decay:
        extra.append(DeviceEMA(decay=float(ema_decay), use_buffers=True))
    if world_size(devices, num_nodes) > 1:
        strategy = "ddp_find_unused_parameters_true" if find_unused_parameters else "ddp"
    else:
        strategy = "auto"
    trainer = pl.Trainer(
        default_root_dir=str(run_dir),
        accelerator=accelerator,
        devices=devices,
        num_nodes=int(num_nodes),
        strategy=strategy,
        use_distributed_sampler=False,
        precision=precision,
        max_epochs=int(max_epochs),
        max_steps=-1 if max_steps is None else int(max_steps),
        limit_train_batches=limit_train_batches,
        limit_val_batches=limit_val_batches,
        gradient_clip_val=grad_clip or None,
        accumulate_grad_batches=int(accumulate),
        callbacks=[best, last, *callbacks, *extra, RanksAgree()],
        logger=list(loggers),
        log_every_n_steps=int(log_every_n_steps),
        num_sanity_val_steps=int(num_sanity_val_steps),
        enable_progress_bar=progress_bar,
        enable_model_summary=model_summary,
        deterministic=False,
    )
    return trainer, best


def rename_monitors(checkpoint: dict, renames: dict[str, str]) -> None:
    """Rewrite the monitored-metric names in a Lightning checkpoint's callback states (in place).

    Lightning restores a callback's state by a key that contains its ``monitor``; a run
    saved before a metric was renamed (``val/sisdr`` -> ``val/si_sdr``) would otherwise lose
    its best score and early-stopping counters on resume. Call it from
    ``LightningModule.on_load_checkpoint``, which runs before the callbacks are restored.

    Args:
        checkpoint: the loaded checkpoint dictionary.
        renames: ``{former name: current name}``.
    """
    states = checkpoint.get("callbacks")
    if not isinstance(states, dict):
        return
    for key in list(states):
        new_key = key
        for old, new in renames.items():
            new_key = new_key.replace(f"'monitor': '{old}'", f"'monitor': '{new}'")
        state = states.pop(key)
        if isinstance(state, dict) and state.get("monitor") in renames:
            state = {**state, "monitor": renames[state["monitor"]]}
        states[new_key] = state


def fit(trainer: pl.Trainer, module: pl.LightningModule, datamodule, resume_from=None) -> None:
    """``trainer.fit``, resuming from ``resume_from`` (a ``last.ckpt``) when given.

    Checkpoints load with ``weights_only=True``: a checkpoint cannot run code.
    """
    ckpt = str(resume_from) if resume_from else None
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
