"""Residual CNN head in the style of PANNs (Kong et al. 2020) and ERANN (Verbitskiy et al. 2022).

A per-frequency input BatchNorm (PANNs' ``bn0``), a 3x3 stem, then stages of residual blocks
(two 3x3 convolutions, BatchNorm, a configurable activation, DropBlock (Ghiasi et al. 2018) on
the residual branch); every stage after the first halves time and frequency. The feature map
is averaged over frequency and pooled over time (``avg``, ``max``, ``avg+max`` as in PANNs, or
``avg*max``), then dropout and a linear classifier.
"""

from __future__ import annotations

import torch
from torch import nn

from classify.models.layers import DropBlock2d
from classify.models.layers import activation as make_act
from wb.errors import ConfigError

POOLINGS = ("avg", "max", "avg+max", "avg*max")


class ResBlock(nn.Module):
    """Residual block ``act(BN(conv(act(BN(conv(x))))) + shortcut(x))``.

    Args:
        cin: input channels.
        cout: output channels.
        stride: spatial stride (1 or 2); the shortcut is avg-pool + 1x1 conv when the shape
            changes (ResNet-D).
        act: activation name; ``swiglu`` doubles the first conv's channels and gates them.
        dropblock: DropBlock drop probability on the residual branch.
        block_size: DropBlock block size.

    Shapes:
        ``(batch, cin, F, T)`` -> ``(batch, cout, ceil(F / stride), ceil(T / stride))``.
    """

    def __init__(
        self, cin: int, cout: int, stride: int, act: str, dropblock: float, block_size: int
    ) -> None:
        super().__init__()
        mult = 2 if act == "swiglu" else 1
        self.conv1 = nn.Conv2d(cin, cout * mult, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout * mult)
        self.act1 = make_act(act, gated=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        nn.init.zeros_(self.bn2.weight)  # start as identity (Goyal et al. 2017)
        self.drop = DropBlock2d(dropblock, block_size)
        self.act2 = make_act(act, gated=False)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.AvgPool2d(stride, ceil_mode=True) if stride > 1 else nn.Identity(),
                nn.Conv2d(cin, cout, 1, bias=False),
                nn.BatchNorm2d(cout),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block; see the class docstring for shapes."""
        h = self.act1(self.bn1(self.conv1(x)))
        h = self.drop(self.bn2(self.conv2(h)))
        return self.act2(h + self.shortcut(x))


class ResidualCNN(nn.Module):
    """Residual CNN classifier.

    Args:
        n_classes: number of classes.
        n_bins: frequency rows of the input.
        n_frames: frames of the input (unused: the head is length-agnostic).
        widths: channels per stage; stages after the first downsample by 2.
        blocks: residual blocks per stage.
        activation: ``relu``, ``gelu``, ``lrelu`` or ``swiglu``.
        dropblock: DropBlock probability in the blocks (Ghiasi et al. 2018).
        block_size: DropBlock block size.
        dropout: dropout before the classifier.
        pooling: global pooling over time: ``avg``, ``max``, ``avg+max`` or ``avg*max``.
        input_bn: per-frequency BatchNorm on the input (PANNs ``bn0``).
        stem_stride: stride of the 3x3 stem convolution (2 quarters the cost of the first
            stage; useful on a CPU).

    Shapes:
        ``(batch, 1, n_bins, n_frames)`` -> logits ``(batch, n_classes)``.

    Raises:
        ConfigError: unknown pooling or activation, empty ``widths``.
    """

    def __init__(
        self,
        n_classes: int,
        n_bins: int,
        n_frames: int = 0,
        widths: tuple[int, ...] | list[int] = (32, 64, 128),
        blocks: int = 1,
        activation: str = "relu",
        dropblock: float = 0.0,
        block_size: int = 3,
        dropout: float = 0.2,
        pooling: str = "avg+max",
        input_bn: bool = True,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"model.pooling={pooling!r}: choose from {', '.join(POOLINGS)}")
        if not widths:
            raise ConfigError("model.widths must list at least one stage width")
        self.pooling = pooling
        self.bn0 = nn.BatchNorm2d(n_bins) if input_bn else None
        w0 = int(widths[0])
        self.stem = nn.Sequential(
            nn.Conv2d(1, w0, 3, stride=int(stem_stride), padding=1, bias=False),
            nn.BatchNorm2d(w0),
            make_act(activation, gated=False),
        )
        layers: list[nn.Module] = []
        cin = w0
        for i, w in enumerate(widths):
            for j in range(int(blocks)):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(ResBlock(cin, int(w), stride, activation, dropblock, block_size))
                cin = int(w)
        self.blocks = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(batch, 1, n_bins, frames)`` -> logits ``(batch, n_classes)``."""
        if self.bn0 is not None:
            x = self.bn0(x.transpose(1, 2)).transpose(1, 2)
        h = self.blocks(self.stem(x)).mean(dim=2)  # (batch, channels, time)
        avg, mx = h.mean(dim=-1), h.amax(dim=-1)
        if self.pooling == "avg":
            z = avg
        elif self.pooling == "max":
            z = mx
        elif self.pooling == "avg+max":
            z = avg + mx
        else:
            z = avg * mx
        return self.fc(self.dropout(z))
