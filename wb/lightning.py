"""Helpers shared by the PyTorch Lightning trainers of ``separation`` and ``classify``."""

from __future__ import annotations

import torch

from wb.errors import ConfigError

# Lightning's precision names (``pytorch_lightning.Trainer(precision=...)``)
PRECISIONS = ("64-true", "64", "32-true", "32", "16-true", "16-mixed", "bf16-true", "bf16-mixed")


def precision(setting: str, accelerator: str) -> str:
    """Lightning ``precision`` for a ``train.precision`` setting.

    Args:
        setting: ``auto`` (on a GPU: ``bf16-mixed`` where bf16 is supported, else
            ``16-mixed``; elsewhere ``32-true``) or one of :data:`PRECISIONS`, passed through.
        accelerator: Lightning accelerator name; ``auto`` means GPU when CUDA is available.

    Returns:
        the value for ``Trainer(precision=...)``.

    Raises:
        ConfigError: a name Lightning does not know, or ``16-mixed`` (float16 autocast)
            without a GPU.
    """
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    setting = str(setting)
    if setting == "auto":
        if not gpu:
            return "32-true"
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    if setting not in PRECISIONS:
        raise ConfigError(f"train.precision={setting!r}: choose auto, {', '.join(PRECISIONS)}")
    if setting == "16-mixed" and not gpu:
        raise ConfigError("train.precision=16-mixed: float16 mixed precision needs a GPU")
    return setting


def checkpoint_callbacks(ckpt_dir, monitor: str, mode: str) -> tuple:
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
