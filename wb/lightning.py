"""Helpers shared by the PyTorch Lightning trainers of ``separation`` and ``classify``."""

from __future__ import annotations

import torch

from wb.errors import ConfigError

PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed")


def precision(setting: str, accelerator: str) -> str:
    """Lightning ``precision`` for a ``train.precision`` setting.

    Args:
        setting: ``auto`` (bf16 mixed on a GPU that supports it, else 16 mixed; 32-bit on
            CPU) or one of :data:`PRECISIONS`.
        accelerator: ``cpu``, ``gpu``/``cuda`` or ``auto`` (GPU when CUDA is available).

    Raises:
        ConfigError: an unknown setting, or mixed precision without a GPU.
    """
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    setting = str(setting)
    if setting == "auto":
        if not gpu:
            return "32-true"
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    if setting not in PRECISIONS:
        raise ConfigError(f"train.precision={setting!r}: choose auto, {', '.join(PRECISIONS)}")
    if setting.endswith("-mixed") and not gpu:
        raise ConfigError(f"train.precision={setting}: mixed precision needs a GPU")
    return setting
