"""Post-filters: re-use the mixture to refine a model's estimates, chunk by chunk.

A post-filter takes a model's estimates of one chunk and the chunk's mixture and returns
refined estimates of the same shape:

* ``none``: the estimates as they are.
* ``consistency``: mixture consistency (Wisdom et al. 2019, "Differentiable consistency
  constraints for improved deep speech enhancement"): what the estimates miss of the
  mixture, ``x - sum_k e_k``, is shared out equally, so the stems sum to the mixture.
* ``mask`` (``mask:ALPHA``): a soft time-frequency mask built from the estimates and applied
  to the mixture's STFT, ``|E_j|^alpha / sum_k |E_k|^alpha * X`` (Liutkus & Badeau 2015,
  "Generalized Wiener filtering with fractional power spectrograms"; alpha = 2 is the
  single-channel Wiener filter of Open-Unmix / norbert, alpha = 1 a magnitude ratio mask).
  Every output is then a filtered mixture, so artefacts the model adds outside the mixture's
  spectrum go, and the stems sum to the mixture.

Both ``consistency`` and ``mask`` make the stems of a chunk sum to the chunk's mixture, and
:class:`separation.inference.OverlapAdd` divides its weighted sum of chunks by the summed
weights, so the stems sum to the mixture the model sees (its rate and channels) as well.
A Demucs bag whose weights differ between sources (``htdemucs_ft``) filters each model's
estimates before weighting them, so there the sum holds only approximately.

:func:`soft_mask` is also the oracle ideal ratio mask of :func:`separation.evaluate.oracle_irm`
when given the true sources.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from wb.errors import WbError

KINDS = ("none", "consistency", "mask")
DEFAULT_MASK_POWER = 1.0


@dataclass(frozen=True)
class PostFilter:
    """A parsed post-filter: ``kind`` (one of :data:`KINDS`) and, for ``mask``, ``power``.

    Use :meth:`parse` to build one from ``none``, ``consistency``, ``mask`` or ``mask:ALPHA``.
    """

    kind: str = "none"
    power: float = DEFAULT_MASK_POWER

    @classmethod
    def parse(cls, spec: str | PostFilter | None) -> PostFilter:
        """``"mask:2"`` -> ``PostFilter("mask", 2.0)``; ``None`` -> ``none``.

        Raises:
            WbError: an unknown kind, a power on anything but ``mask``, or a power that is not
                a number in (0, 8].
        """
        if isinstance(spec, PostFilter):
            return spec
        if spec is None:
            return cls()
        kind, colon, power = str(spec).strip().partition(":")
        if kind not in KINDS:
            raise WbError(f"postfilter {spec!r}: choose from none, consistency, mask or mask:ALPHA")
        if not colon:
            return cls(kind)
        if kind != "mask":
            raise WbError(f"postfilter {spec!r}: only mask takes a power (mask:ALPHA)")
        try:
            value = float(power)
        except ValueError:
            value = float("nan")
        if not 0.0 < value <= 8.0:
            raise WbError(f"postfilter {spec!r}: ALPHA must be a number in (0, 8]")
        return cls(kind, value)

    def __str__(self) -> str:
        if self.kind != "mask" or self.power == DEFAULT_MASK_POWER:
            return self.kind
        return f"mask:{self.power:g}"

    def __call__(
        self, estimates: torch.Tensor, mixture: torch.Tensor, sample_rate: int
    ) -> torch.Tensor:
        """Refine ``estimates`` ``(batch, n_sources, channels, samples)`` of ``mixture``
        ``(batch, channels, samples)`` at ``sample_rate`` Hz; returns the same shape."""
        if self.kind == "consistency":
            return mixture_consistency(estimates, mixture)
        if self.kind == "mask":
            return soft_mask(estimates, mixture, sample_rate, self.power)
        return estimates


def mixture_consistency(estimates: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    """Share the residual ``mixture - sum(estimates)`` equally among the sources (the
    unweighted projection of Wisdom et al. 2019).

    Args:
        estimates: ``(..., n_sources, channels, samples)``.
        mixture: ``(..., channels, samples)``.

    Returns:
        Same shape as ``estimates``; the sources sum to ``mixture``.
    """
    residual = mixture.unsqueeze(-3) - estimates.sum(dim=-3, keepdim=True)
    return estimates + residual / estimates.shape[-3]


def stft_size(sample_rate: int, window_seconds: float = 0.064) -> int:
    """The power of two nearest ``window_seconds * sample_rate`` (at least 64): 512 samples
    at 8 kHz, 1024 at 16 kHz for the default 64 ms."""
    return 2 ** max(6, round(math.log2(window_seconds * sample_rate)))


def soft_mask(
    estimates: torch.Tensor,
    mixture: torch.Tensor,
    sample_rate: int,
    power: float = DEFAULT_MASK_POWER,
    window_seconds: float = 0.064,
) -> torch.Tensor:
    """Mask the mixture's STFT with ``|E_j|^power / sum_k |E_k|^power`` (see the module doc).

    The STFT is a Hann window of :func:`stft_size` samples with a hop of a quarter window;
    bins where every estimate is silent are shared equally, so the outputs always sum to the
    mixture (up to the STFT's round-off).

    Args:
        estimates: ``(..., n_sources, channels, samples)``.
        mixture: ``(..., channels, samples)``.
        sample_rate: Hz (sets the window).
        power: the exponent alpha (2: Wiener filter; 1: magnitude ratio mask).
        window_seconds: STFT window length in seconds.

    Returns:
        Same shape and dtype as ``estimates``.

    Raises:
        WbError: ``mixture`` is not ``estimates`` without its source axis.
    """
    *lead, k, c, n = estimates.shape
    if tuple(mixture.shape) != (*lead, c, n):
        raise WbError(
            f"mixture shape {tuple(mixture.shape)} does not match estimates "
            f"{tuple(estimates.shape)} (expected {(*lead, c, n)})"
        )
    n_fft = stft_size(sample_rate, window_seconds)
    dtype = torch.float64 if estimates.dtype == torch.float64 else torch.float32
    est = estimates.reshape(-1, n).to(dtype)
    mix = mixture.reshape(-1, n).to(dtype)
    padded = max(n, n_fft)  # the STFT's reflect padding needs n_fft / 2 samples
    if padded > n:
        est = torch.nn.functional.pad(est, (0, padded - n))
        mix = torch.nn.functional.pad(mix, (0, padded - n))
    window = torch.hann_window(n_fft, dtype=dtype, device=est.device)
    spec_e = torch.stft(est, n_fft, n_fft // 4, window=window, return_complex=True)
    spec_x = torch.stft(mix, n_fft, n_fft // 4, window=window, return_complex=True)
    spec_e = spec_e.reshape(-1, k, c, *spec_e.shape[-2:])
    spec_x = spec_x.reshape(-1, 1, c, *spec_x.shape[-2:])
    # magnitudes relative to the loudest source of each bin: no underflow or overflow of
    # |E|^power in quiet or loud bins, and the loudest source's weight is exactly 1
    mag = spec_e.abs()
    peak = mag.amax(dim=1, keepdim=True)
    weight = (mag / peak.clamp_min(torch.finfo(mag.dtype).tiny)) ** power
    total = weight.sum(dim=1, keepdim=True)
    mask = torch.where(peak > 0, weight / total.clamp_min(1.0), torch.full_like(weight, 1 / k))
    out = torch.istft(
        (mask * spec_x).reshape(-1, *spec_x.shape[-2:]), n_fft, n_fft // 4, window=window,
        length=padded,
    )  # fmt: skip
    return out[:, :n].reshape(*lead, k, c, n).to(estimates.dtype)
