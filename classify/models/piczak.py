"""Piczak (2015) ESC-50 baseline CNN.

K. J. Piczak, "Environmental sound classification with convolutional neural networks",
IEEE MLSP 2015: log-mel segments (60 bands x 41 frames, with deltas as a second channel) ->
conv 80 filters 57x6 (ReLU) -> max-pool 4x3 stride 1x3 -> conv 80 filters 1x3 (ReLU) ->
max-pool 1x3 stride 1x3 -> FC 5000 (ReLU, dropout 0.5) -> FC 5000 (ReLU, dropout 0.5) ->
softmax.

Adaptation to other input sizes: the first kernel spans ``n_bins - 3`` bands (57 of 60 in the
paper, so the frequency axis is 4 rows before the 4x3 pool, exactly as in the paper), its width
stays 6 frames, and the first FC layer's input size follows from ``n_frames``.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn


class Piczak(nn.Module):
    """Piczak's two-conv-layer CNN with two 5000-unit fully connected layers.

    Args:
        n_classes: number of output classes.
        n_bins: mel bands of the input.
        n_frames: frames of the input.
        deltas: append the delta features as a second input channel (as in the paper).
        filters: filters per conv layer (80).
        kernel_width: width in frames of the first conv kernel (6).
        hidden: units per FC layer (5000).
        dropout: dropout after each FC layer (0.5).
        conv_dropout: optional dropout after the first conv block (0: off).

    Shapes:
        ``(batch, 1, n_bins, n_frames)`` -> logits ``(batch, n_classes)``.
    """

    def __init__(
        self,
        n_classes: int,
        n_bins: int,
        n_frames: int,
        deltas: bool = True,
        filters: int = 80,
        kernel_width: int = 6,
        hidden: int = 5000,
        dropout: float = 0.5,
        conv_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.deltas = deltas
        kh = max(1, n_bins - 3)
        kw = max(1, min(kernel_width, n_frames))
        self.features = nn.Sequential(
            nn.Conv2d(2 if deltas else 1, filters, (kh, kw)),
            nn.ReLU(),
            nn.MaxPool2d((min(4, n_bins - kh + 1), 3), stride=(1, 3), ceil_mode=True),
            nn.Dropout(conv_dropout),
            nn.Conv2d(filters, filters, (1, 3), padding=(0, 1)),
            nn.ReLU(),
            nn.MaxPool2d((1, 3), stride=(1, 3), ceil_mode=True),
        )
        with torch.no_grad():
            flat = self.features(torch.zeros(1, 2 if deltas else 1, n_bins, n_frames)).numel()
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(batch, 1, n_bins, n_frames)`` -> logits ``(batch, n_classes)``."""
        if self.deltas:
            x = torch.cat([x, torchaudio.functional.compute_deltas(x)], dim=1)
        return self.classifier(self.features(x))
