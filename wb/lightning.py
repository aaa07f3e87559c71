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
