"""Music classification heads: the short-chunk CNN of Won et al. (2020) and the CRNN of Choi
et al. (2017), as heads of the classification core (log-mel images in, logits out).

* M. Won, A. Ferraro, D. Bogdanov and X. Serra, "Evaluation of CNN-based automatic music
  tagging models", SMC 2020: 7 layers of 3x3 convolution, batch norm, ReLU and 2x2 max
  pooling on ~3.7 s chunks of 128 mel bands, global max pooling, a 512-unit dense layer
  (batch norm, ReLU, dropout 0.5), then the output layer.
* K. Choi, G. Fazekas, M. Sandler and K. Cho, "Convolutional recurrent neural networks for
  music classification", ICASSP 2017: 4 convolution blocks (3x3, batch norm, ELU, max
  pooling), the frequency axis collapsed, then 2 GRU layers over time and the output layer.

Pooling adapts to the input: a block pools an axis only while it is at least 2 long, so any
``(n_bins, n_frames)`` works (e.g. 3 s at 22,050 Hz with hop 512: 128 x 130).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from wb.errors import ConfigError


def _pool(size: tuple[int, int], shape: list[int]) -> tuple[int, int]:
    """A pooling kernel no larger than the current ``[height, width]`` (updated in place)."""
    kh, kw = min(size[0], max(1, shape[0])), min(size[1], max(1, shape[1]))
    shape[0], shape[1] = max(1, shape[0] // kh), max(1, shape[1] // kw)
    return kh, kw


class ShortChunkCNN(nn.Module):
    """Won et al. (2020)'s short-chunk CNN.

    Args:
        n_classes: number of output classes.
        n_bins: mel bands of the input (128 in the paper).
        n_frames: frames of the input.
        widths: output channels of the conv layers (the paper: 128, 128, 256, 256, 256, 256,
            512).
        hidden: units of the dense layer (512).
        dropout: dropout before the output layer (0.5).

    Shapes:
        ``(batch, 1, n_bins, n_frames)`` -> logits ``(batch, n_classes)``.
    """

    def __init__(
        self,
        n_classes: int,
        n_bins: int,
        n_frames: int,
        widths: Sequence[int] = (128, 128, 256, 256, 256, 256, 512),
        hidden: int = 512,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.BatchNorm2d(1)]
        shape, cin = [n_bins, n_frames], 1
        for w in widths:
            layers += [
                nn.Conv2d(cin, int(w), 3, padding=1),
                nn.BatchNorm2d(int(w)),
                nn.ReLU(),
                nn.MaxPool2d(_pool((2, 2), shape)),
            ]
            cin = int(w)
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(cin, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(batch, 1, n_bins, n_frames)`` -> logits ``(batch, n_classes)``."""
        x = self.features(x)
        return self.head(x.amax(dim=(2, 3)))  # global max pooling


class CRNN(nn.Module):
    """Choi et al. (2017)'s convolutional recurrent network.

    Args:
        n_classes: number of output classes.
        n_bins: mel bands of the input (96 in the paper).
        n_frames: frames of the input.
        widths: channels of the 4 conv blocks (the paper's 2.5 M-parameter model is about
            (64, 128, 128, 128)).
        pools: ``(freq, time)`` max-pooling of each block (the paper: 2x2, 3x3, 4x4, 4x4);
            clipped to what is left of each axis. The frequency axis left after them is
            averaged away.
        gru: units of each of the 2 GRU layers (32 in the paper).
        dropout: dropout after each conv block (0.1 in the paper).

    Raises:
        ConfigError: ``widths`` and ``pools`` of different lengths.

    Shapes:
        ``(batch, 1, n_bins, n_frames)`` -> logits ``(batch, n_classes)``.
    """

    def __init__(
        self,
        n_classes: int,
        n_bins: int,
        n_frames: int,
        widths: Sequence[int] = (64, 128, 128, 128),
        pools: Sequence[Sequence[int]] = ((2, 2), (3, 3), (4, 4), (4, 4)),
        gru: int = 32,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if len(widths) != len(pools):
            raise ConfigError(
                f"crnn: widths ({len(widths)}) and pools ({len(pools)}) differ in length"
            )
        layers: list[nn.Module] = [nn.BatchNorm2d(1)]
        shape, cin = [n_bins, n_frames], 1
        for w, p in zip(widths, pools, strict=True):
            layers += [
                nn.Conv2d(cin, int(w), 3, padding=1),
                nn.BatchNorm2d(int(w)),
                nn.ELU(),
                nn.MaxPool2d(_pool((int(p[0]), int(p[1])), shape)),
                nn.Dropout(dropout),
            ]
            cin = int(w)
        self.features = nn.Sequential(*layers)
        self.gru = nn.GRU(cin, gru, num_layers=2, batch_first=True)
        self.out = nn.Linear(gru, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(batch, 1, n_bins, n_frames)`` -> logits ``(batch, n_classes)``."""
        x = self.features(x).mean(dim=2)  # (batch, channels, time)
        _, h = self.gru(x.transpose(1, 2))
        return self.out(h[-1])
