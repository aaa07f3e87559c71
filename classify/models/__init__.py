"""Classifier heads by name, and :class:`Classifier` = front end + head.

Every head takes log-mel/MFCC images ``(batch, 1, n_bins, n_frames)`` and returns logits
``(batch, n_classes)``; constructors share the leading arguments
``(n_classes, n_bins, n_frames)`` and take the rest from the ``model:`` config group.

=============  ==============================================================================
``piczak``     :class:`~classify.models.piczak.Piczak` -- Piczak 2015 ESC-50 baseline CNN
``cnn``        :class:`~classify.models.cnn.ResidualCNN` -- PANNs/ERANN-style residual CNN
``transformer`` :class:`~classify.models.transformer.AudioTransformer` -- conv stem / AST patches
``mamba``      :class:`~classify.models.mamba.AudioMamba` -- bidirectional selective SSM
``shortchunk`` :class:`~classify.models.music.ShortChunkCNN` -- Won et al. 2020 music tagging
``crnn``       :class:`~classify.models.music.CRNN` -- Choi et al. 2017 conv + GRU
=============  ==============================================================================
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from classify.frontends import build_frontend
from wb.errors import ConfigError

HEADS: dict[str, str] = {
    "piczak": "classify.models.piczak:Piczak",
    "cnn": "classify.models.cnn:ResidualCNN",
    "transformer": "classify.models.transformer:AudioTransformer",
    "mamba": "classify.models.mamba:AudioMamba",
    "shortchunk": "classify.models.music:ShortChunkCNN",
    "crnn": "classify.models.music:CRNN",
}


def head_class(name: str) -> type[nn.Module]:
    """The head class registered as ``name``.

    Raises:
        ConfigError: unknown name.
    """
    if name not in HEADS:
        raise ConfigError(f"unknown model {name!r} (choose from {', '.join(HEADS)})")
    module, attr = HEADS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def build_head(name: str, n_classes: int, n_bins: int, n_frames: int, **kwargs: Any) -> nn.Module:
    """Build a head by name.

    Args:
        name: a key of :data:`HEADS`.
        n_classes: number of classes.
        n_bins: frequency rows of the features.
        n_frames: frames of the features.
        **kwargs: the head's own options (the ``model:`` config group).

    Raises:
        ConfigError: unknown name, unknown option, or an invalid value.
    """
    cls = head_class(name)
    try:
        return cls(n_classes=n_classes, n_bins=n_bins, n_frames=n_frames, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"model {name}: {exc}") from None


class Classifier(nn.Module):
    """Waveform classifier: :class:`~classify.frontends.Frontend` followed by a head.

    Self-describing: its constructor kwargs are plain values, so
    :func:`wb.checkpoint.save_model` / :func:`wb.checkpoint.load_model` rebuild it
    (class reference ``classify.models:Classifier``), front-end statistics included.

    Args:
        n_classes: number of classes.
        sample_rate: input sample rate in Hz.
        n_samples: example length in samples (sets the head's ``n_frames``).
        frontend: kwargs of :class:`~classify.frontends.Frontend`.
        model: ``{"name": head name, **head kwargs}``.

    Shapes:
        ``forward``: waveform ``(batch, samples)`` or ``(batch, 1, samples)`` -> logits
        ``(batch, n_classes)``.

    Raises:
        ConfigError: bad front-end or head settings.
    """

    def __init__(
        self,
        n_classes: int,
        sample_rate: int,
        n_samples: int,
        frontend: Mapping[str, Any],
        model: Mapping[str, Any],
    ) -> None:
        super().__init__()
        model = dict(model)
        name = model.pop("name", None)
        if not name:
            raise ConfigError("model.name is not set (choose from " + ", ".join(HEADS) + ")")
        self.frontend = build_frontend(sample_rate, **dict(frontend))
        self.n_frames = self.frontend.n_frames(n_samples)
        self.head = build_head(name, n_classes, self.frontend.n_bins, self.n_frames, **model)
        self.name = name

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """Waveform ``(batch, [1,] samples)`` -> features ``(batch, 1, n_bins, frames)``."""
        return self.frontend(wave)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Waveform ``(batch, [1,] samples)`` -> logits ``(batch, n_classes)``."""
        return self.head(self.frontend(wave))


#: The ``class`` that classifier model files carry.
CLASS_REF = f"{__name__}:Classifier"
#: The allow-list of model-file classes this package builds (:func:`wb.checkpoint.load_model`).
BUILDERS: dict[str, Any] = {CLASS_REF: Classifier}
