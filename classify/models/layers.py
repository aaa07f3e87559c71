"""Building blocks shared by the heads: activations, DropBlock, convolutional token stems."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wb.errors import ConfigError

ACTIVATIONS = ("relu", "gelu", "lrelu", "swiglu")


class SwiGLU(nn.Module):
    """Gated linear unit with a SiLU gate (Shazeer 2020): halves the channel axis.

    Shapes:
        ``(batch, 2 * channels, ...)`` -> ``(batch, channels, ...)`` (``dim=1``).
    """

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``silu(a) * b`` where ``a, b`` are the two halves of ``x`` along ``dim``."""
        a, b = x.chunk(2, dim=self.dim)
        return F.silu(a) * b


def activation(name: str, gated: bool = True) -> nn.Module:
    """Activation module by name.

    Args:
        name: ``relu``, ``gelu``, ``lrelu`` (slope 0.01) or ``swiglu``.
        gated: for ``swiglu``, return the gating :class:`SwiGLU` (the preceding layer must
            produce twice the channels); ``False`` gives its ungated counterpart ``SiLU``.

    Raises:
        ConfigError: unknown name.
    """
    if name == "relu":
        return nn.ReLU(inplace=False)
    if name == "gelu":
        return nn.GELU()
    if name == "lrelu":
        return nn.LeakyReLU(0.01)
    if name == "swiglu":
        return SwiGLU() if gated else nn.SiLU()
    raise ConfigError(f"model.activation={name!r}: choose from {', '.join(ACTIVATIONS)}")


class DropBlock2d(nn.Module):
    """DropBlock (Ghiasi, Lin & Le 2018): drop contiguous ``block_size x block_size`` regions.

    Args:
        p: fraction of units to drop (``keep_prob = 1 - p`` in the paper).
        block_size: side of the dropped squares in feature-map cells.

    Shapes:
        ``(batch, channels, height, width)`` -> same; identity in eval mode or with ``p=0``.
    """

    def __init__(self, p: float = 0.0, block_size: int = 3) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"model.dropblock must be in [0, 1), got {p}")
        self.p, self.block_size = float(p), int(block_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Zero random blocks and rescale the rest by ``numel / kept``."""
        if not self.training or self.p == 0:
            return x
        n, c, h, w = x.shape
        bs = max(1, min(self.block_size, h, w))
        gamma = self.p / bs**2 * (h * w) / ((h - bs + 1) * (w - bs + 1))
        seeds = (torch.rand(n, c, h - bs + 1, w - bs + 1, device=x.device) < gamma).to(x.dtype)
        seeds = F.pad(seeds, (bs // 2, (bs - 1) // 2, bs // 2, (bs - 1) // 2))
        block = F.max_pool2d(seeds, kernel_size=bs, stride=1, padding=bs // 2)[..., :h, :w]
        keep = 1.0 - block
        return x * keep * (keep.numel() / keep.sum().clamp_min(1.0))


class ConvStem(nn.Module):
    """Convolutional stem turning a spectrogram into a token sequence over time.

    Each stage is ``conv3x3 -> BatchNorm -> GELU -> pool``; the frequency axis is halved per
    stage and the time axis by ``time_stride`` once in total (first stage), then frequency and
    channels are flattened and projected to ``d_model``.

    Args:
        n_bins: frequency rows of the input.
        d_model: token width.
        channels: output channels per stage.
        time_stride: time downsampling factor (1 or 2).

    Shapes:
        ``(batch, 1, n_bins, frames)`` -> ``(batch, frames // time_stride, d_model)``.
    """

    def __init__(
        self, n_bins: int, d_model: int, channels: tuple[int, ...] = (32, 64), time_stride: int = 2
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin, f = 1, n_bins
        for i, c in enumerate(channels):
            pool = (2, time_stride if i == 0 else 1)
            layers += [
                nn.Conv2d(cin, c, 3, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.GELU(),
                nn.MaxPool2d(pool, ceil_mode=True),
            ]
            cin, f = c, (f + 1) // 2
        self.body = nn.Sequential(*layers)
        self.proj = nn.Linear(cin * f, d_model)
        self.time_stride = time_stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spectrogram ``(batch, 1, bins, frames)`` -> tokens ``(batch, time, d_model)``."""
        h = self.body(x)  # (batch, c, f, t)
        b, c, f, t = h.shape
        return self.proj(h.permute(0, 3, 1, 2).reshape(b, t, c * f))


def n_tokens_after_stem(n_frames: int, time_stride: int) -> int:
    """Tokens :class:`ConvStem` produces for ``n_frames`` input frames (ceil division)."""
    return -(-n_frames // time_stride)


class AttentionPool(nn.Module):
    """Attention pooling over tokens: softmax-weighted mean with learned scores.

    Shapes:
        ``(batch, tokens, dim)`` -> ``(batch, dim)``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Weighted sum of tokens with weights ``softmax(score(x))`` over the token axis."""
        w = torch.softmax(self.score(x).squeeze(-1), dim=1)
        return torch.einsum("bt,btd->bd", w, x)
