"""Transformer head: conv stem or AST-style patch embedding + ``nn.TransformerEncoder``.

* ``embed="conv"``: a small convolutional stem (:class:`~classify.models.layers.ConvStem`)
  produces one token per (downsampled) time step, as in Conformer-style front ends.
* ``embed="patch"``: the Audio Spectrogram Transformer's patch embedding (Gong et al. 2021,
  "AST: Audio Spectrogram Transformer"): a ``Conv2d`` with kernel ``patch`` and stride
  ``patch_stride`` cuts the spectrogram into (possibly overlapping) patches, one token each.

Learned positional embeddings (bilinearly interpolated when the input grid differs from the
one the model was built for), a pre-norm encoder (Vaswani et al. 2017; Xiong et al. 2020),
then attention pooling or the mean over tokens and a linear classifier.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from classify.models.layers import AttentionPool, ConvStem, n_tokens_after_stem
from wb.errors import ConfigError


class AudioTransformer(nn.Module):
    """Transformer encoder classifier over spectrogram tokens.

    Args:
        n_classes: number of classes.
        n_bins: frequency rows of the input.
        n_frames: frames of the input (sets the positional-embedding grid).
        embed: ``"conv"`` (tokens over time) or ``"patch"`` (AST patches over time x freq).
        d_model: token width.
        n_heads: attention heads.
        n_layers: encoder layers.
        ff_mult: feed-forward width as a multiple of ``d_model``.
        dropout: dropout inside the encoder and before the classifier.
        pooling: ``"attention"`` or ``"mean"``.
        stem_channels: conv-stem channels per stage (``embed="conv"``).
        time_stride: conv-stem time downsampling (``embed="conv"``).
        patch: patch size ``[freq, time]`` (``embed="patch"``).
        patch_stride: patch stride ``[freq, time]`` (``embed="patch"``; smaller than
            ``patch`` gives AST's overlapping patches).

    Shapes:
        ``(batch, 1, n_bins, n_frames)`` -> logits ``(batch, n_classes)``.

    Raises:
        ConfigError: unknown ``embed``/``pooling``, ``d_model`` not divisible by ``n_heads``,
            or a patch larger than the input.
    """

    def __init__(
        self,
        n_classes: int,
        n_bins: int,
        n_frames: int,
        embed: str = "conv",
        d_model: int = 128,
        n_heads: int = 4,
        n_layers: int = 4,
        ff_mult: int = 2,
        dropout: float = 0.1,
        pooling: str = "attention",
        stem_channels: tuple[int, ...] | list[int] = (32, 64),
        time_stride: int = 2,
        patch: tuple[int, int] | list[int] = (16, 16),
        patch_stride: tuple[int, int] | list[int] = (10, 10),
    ) -> None:
        super().__init__()
        if embed not in ("conv", "patch"):
            raise ConfigError(f"model.embed={embed!r}: choose conv or patch")
        if pooling not in ("attention", "mean"):
            raise ConfigError(f"model.pooling={pooling!r}: choose attention or mean")
        if d_model % n_heads:
            raise ConfigError(f"model.d_model={d_model} is not divisible by n_heads={n_heads}")
        self.embed_kind = embed
        if embed == "conv":
            self.embed = ConvStem(n_bins, d_model, tuple(stem_channels), int(time_stride))
            grid = (1, n_tokens_after_stem(n_frames, int(time_stride)))
        else:
            pf, pt = (min(int(patch[0]), n_bins), min(int(patch[1]), n_frames))
            sf, st = int(patch_stride[0]), int(patch_stride[1])
            self.embed = nn.Conv2d(1, d_model, (pf, pt), stride=(sf, st))
            grid = ((n_bins - pf) // sf + 1, (n_frames - pt) // st + 1)
        self.grid = grid
        self.pos = nn.Parameter(torch.zeros(1, d_model, *grid))
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, d_model * ff_mult, dropout, activation="gelu",
            batch_first=True, norm_first=True,
        )  # fmt: skip
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.pool = AttentionPool(d_model) if pooling == "attention" else None
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(d_model, n_classes)

    def _pos(self, grid: tuple[int, int]) -> torch.Tensor:
        pos = self.pos
        if tuple(grid) != tuple(self.grid):
            pos = F.interpolate(pos, size=grid, mode="bilinear", align_corners=False)
        return pos.flatten(2).transpose(1, 2)  # (1, tokens, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(batch, 1, n_bins, frames)`` -> logits ``(batch, n_classes)``."""
        if self.embed_kind == "conv":
            tokens = self.embed(x)  # (batch, time, d_model)
            grid = (1, tokens.shape[1])
        else:
            h = self.embed(x)  # (batch, d_model, f, t)
            grid = (h.shape[2], h.shape[3])
            tokens = h.flatten(2).transpose(1, 2)
        tokens = tokens + self._pos(grid)
        h = self.norm(self.encoder(tokens))
        z = self.pool(h) if self.pool is not None else h.mean(dim=1)
        return self.fc(self.dropout(z))
