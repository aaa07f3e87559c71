"""Mamba-style selective state-space head in plain PyTorch (no CUDA kernels).

Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces": each block
projects the input to ``x`` and a gate ``z``, runs a causal depthwise conv + SiLU on ``x``,
computes input-dependent ``dt`` (softplus), ``B`` and ``C``, and scans

    h_t = exp(dt_t * A) * h_{t-1} + dt_t * B_t * x_t,      y_t = C_t . h_t + D * x_t

per channel (``A`` diagonal, negative, S4D-real initialisation ``A_n = -(n+1)``), then
``y * silu(z)`` and an output projection. Blocks are pre-norm residual (RMSNorm). Audio is
not causal, so every block is bidirectional (Vision Mamba, Zhu et al. 2024): one scan forward
in time, one over the time-reversed sequence, summed.

Two scans are provided: ``"sequential"`` (a loop over time; exact) and ``"parallel"`` (the
log-space parallel scan of Heinsen 2023, "Efficient parallelization of a ubiquitous sequential
computation", via ``torch.logcumsumexp`` over complex logarithms; tokens whose input is
exactly zero get a 1e-30 floor, so gradients there differ negligibly from the exact scan).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from classify.models.layers import AttentionPool, ConvStem, n_tokens_after_stem
from wb.errors import ConfigError

SCANS = ("sequential", "parallel")


def selective_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    mode: str = "sequential",
) -> torch.Tensor:
    """Selective SSM scan (Mamba's S6 recurrence) along the time axis.

    Args:
        x: input ``(batch, time, channels)``.
        dt: positive step sizes ``(batch, time, channels)``.
        A: negative diagonal state matrix ``(channels, d_state)``.
        B: input projections ``(batch, time, d_state)``.
        C: output projections ``(batch, time, d_state)``.
        D: skip weights ``(channels,)``.
        mode: ``"sequential"`` or ``"parallel"`` (Heinsen log-space scan).

    Returns:
        ``(batch, time, channels)``.
    """
    log_a = dt.unsqueeze(-1) * A  # (b, t, c, n), <= 0
    u = (dt * x).unsqueeze(-1) * B.unsqueeze(2)  # (b, t, c, n)
    if mode == "parallel":
        a_star = torch.cumsum(log_a, dim=1)
        mag = torch.log(u.abs().clamp_min(1e-30))
        phase = torch.where(u < 0, math.pi, 0.0)
        log_u = torch.complex(mag - a_star, phase)
        h = torch.exp(
            torch.complex(a_star, torch.zeros_like(a_star)) + torch.logcumsumexp(log_u, 1)
        )
        h = h.real
        y = torch.einsum("btcn,btn->btc", h, C)
    else:
        # unbind once (not a[:, t] per step): slicing in a loop makes backward O(time^2)
        a_t, u_t, c_t = torch.exp(log_a).unbind(1), u.unbind(1), C.unbind(1)
        h = x.new_zeros(x.shape[0], x.shape[2], A.shape[1])
        ys = []
        for t in range(x.shape[1]):
            h = a_t[t] * h + u_t[t]
            ys.append(torch.bmm(h, c_t[t].unsqueeze(-1)).squeeze(-1))
        y = torch.stack(ys, dim=1)
    return y + x * D


class SelectiveSSM(nn.Module):
    """One Mamba mixer (unidirectional).

    Args:
        d_model: token width.
        d_state: SSM state size ``N`` per channel.
        d_conv: causal depthwise conv kernel size.
        expand: inner width ``= expand * d_model``.
        dt_rank: rank of the ``dt`` projection (``None``: ``ceil(d_model / 16)``).
        scan: ``"sequential"`` or ``"parallel"``.

    Shapes:
        ``(batch, time, d_model)`` -> same.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | None = None,
        scan: str = "sequential",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
    ) -> None:
        super().__init__()
        d_inner = expand * d_model
        self.dt_rank = dt_rank or math.ceil(d_model / 16)
        self.d_state, self.scan = d_state, scan
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, d_inner)
        # dt initialised log-uniformly in [dt_min, dt_max] through the softplus bias (Mamba).
        dt = torch.exp(
            torch.rand(d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        )
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))  # S4D-real: A = -(1..N)
        self.D = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Tokens ``(batch, time, d_model)`` -> ``(batch, time, d_model)``."""
        t = u.shape[1]
        x, z = self.in_proj(u).chunk(2, dim=-1)
        x = F.silu(self.conv(x.transpose(1, 2))[..., :t].transpose(1, 2))
        dt, B, C = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], -1)
        dt = F.softplus(self.dt_proj(dt))
        A = -torch.exp(self.A_log.float())
        y = selective_scan(x, dt, A, B, C, self.D, self.scan)
        return self.out_proj(y * F.silu(z))


class BiMambaBlock(nn.Module):
    """Pre-norm residual block ``x + fwd(norm(x)) + flip(bwd(flip(norm(x))))``.

    Shapes:
        ``(batch, time, d_model)`` -> same.
    """

    def __init__(self, d_model: int, bidirectional: bool = True, dropout: float = 0.0, **ssm):
        super().__init__()
        self.norm = nn.RMSNorm(d_model)
        self.fwd = SelectiveSSM(d_model, **ssm)
        self.bwd = SelectiveSSM(d_model, **ssm) if bidirectional else None
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block; see the class docstring for shapes."""
        h = self.norm(x)
        y = self.fwd(h)
        if self.bwd is not None:
            y = y + self.bwd(h.flip(1)).flip(1)
        return x + self.drop(y)


class AudioMamba(nn.Module):
    """Bidirectional Mamba-style classifier over time tokens.

    Args:
        n_classes: number of classes.
        n_bins: frequency rows of the input.
        n_frames: frames of the input (unused: the head is length-agnostic).
        d_model: token width.
        n_layers: number of bidirectional blocks.
        d_state: SSM state size per channel.
        d_conv: depthwise conv kernel size.
        expand: inner width multiplier.
        dt_rank: ``dt`` projection rank (``None``: ``ceil(d_model / 16)``).
        bidirectional: scan both directions (default) or forward only.
        stem: ``"conv"`` (:class:`~classify.models.layers.ConvStem`) or ``"linear"``
            (one token per frame from a linear projection of its ``n_bins`` values).
        stem_channels: conv-stem channels per stage.
        time_stride: conv-stem time downsampling.
        dropout: dropout on block outputs and before the classifier.
        pooling: ``"mean"`` or ``"attention"``.
        scan: ``"sequential"`` or ``"parallel"``.

    Shapes:
        ``(batch, 1, n_bins, n_frames)`` -> logits ``(batch, n_classes)``.

    Raises:
        ConfigError: unknown ``stem``, ``pooling`` or ``scan``.
    """

    def __init__(
        self,
        n_classes: int,
        n_bins: int,
        n_frames: int = 0,
        d_model: int = 64,
        n_layers: int = 2,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | None = None,
        bidirectional: bool = True,
        stem: str = "conv",
        stem_channels: tuple[int, ...] | list[int] = (32, 64),
        time_stride: int = 2,
        dropout: float = 0.1,
        pooling: str = "mean",
        scan: str = "sequential",
    ) -> None:
        super().__init__()
        if stem not in ("conv", "linear"):
            raise ConfigError(f"model.stem={stem!r}: choose conv or linear")
        if pooling not in ("mean", "attention"):
            raise ConfigError(f"model.pooling={pooling!r}: choose mean or attention")
        if scan not in SCANS:
            raise ConfigError(f"model.scan={scan!r}: choose from {', '.join(SCANS)}")
        if stem == "conv":
            self.stem = ConvStem(n_bins, d_model, tuple(stem_channels), int(time_stride))
            self.n_tokens = n_tokens_after_stem(n_frames, int(time_stride))
        else:
            self.stem = nn.Sequential(nn.Flatten(1, 2), _Transpose(), nn.Linear(n_bins, d_model))
            self.n_tokens = n_frames
        ssm = dict(d_state=d_state, d_conv=d_conv, expand=expand, dt_rank=dt_rank, scan=scan)
        self.blocks = nn.ModuleList(
            BiMambaBlock(d_model, bidirectional, dropout, **ssm) for _ in range(n_layers)
        )
        self.norm = nn.RMSNorm(d_model)
        self.pool = AttentionPool(d_model) if pooling == "attention" else None
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(d_model, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(batch, 1, n_bins, frames)`` -> logits ``(batch, n_classes)``."""
        h = self.stem(x)  # (batch, time, d_model)
        for block in self.blocks:
            h = block(h)
        h = self.norm(h)
        z = self.pool(h) if self.pool is not None else h.mean(dim=1)
        return self.fc(self.dropout(z))


class _Transpose(nn.Module):
    """``(batch, bins, frames)`` -> ``(batch, frames, bins)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Swap the last two axes."""
        return x.transpose(1, 2)
