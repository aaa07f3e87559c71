"""Separation losses and the SI-SDR measure.

Tensors are shaped ``(batch, n_sources, channels, samples)``. SI-SDR follows Le Roux, Wisdom,
Erdogan & Hershey 2019, "SDR - half-baked or well done?" (ICASSP): both signals are made
zero-mean, the reference is scaled by the optimal ``alpha = <est, ref> / ||ref||^2`` and
``SI-SDR = 10 log10(||alpha ref||^2 / ||alpha ref - est||^2)`` dB. A multichannel signal is
treated as one signal (its channels are concatenated), so one scale factor serves all channels.

Permutation-invariant training (PIT) uses asteroid's :class:`~asteroid.losses.PITLossWrapper`
(pairwise-matrix mode) and is only for unordered sources (e.g. speakers); ordered sources
(SATB voices, MUSDB stems) use the plain loss (``pit: false``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from wb.errors import ConfigError

LOSSES = ("l1", "sisdr")
MAX_DB = 200.0  # SI-SDR of a perfect estimate (dB)
MIN_DB = -100.0  # SI-SDR of a silent estimate (dB)


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor, silent: float = 0.0) -> torch.Tensor:
    """Scale-invariant SDR in dB (Le Roux et al. 2019), computed in float64.

    Args:
        estimate: ``(..., channels, samples)``.
        reference: same shape.
        silent: a reference whose zero-mean energy (sum of squares) is ``<= silent`` gives NaN
            (SI-SDR is undefined for a silent reference).

    Returns:
        ``(...)`` SI-SDR in dB, clamped to ``[MIN_DB, MAX_DB]`` = ``[-100, 200]``: a perfect
        estimate gives 200 dB; a silent or constant estimate (nothing left after removing the
        mean), or one with no component along the reference, gives -100 dB -- a very low,
        finite score, so a model that drops a source is penalised rather than skipped. NaN
        only where the **reference** is silent (undefined there); an estimate holding NaN
        also gives NaN.
    """
    est = estimate.detach().to(torch.float64).flatten(-2)
    ref = reference.detach().to(torch.float64).flatten(-2)
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    ref_energy = (ref * ref).sum(-1)
    alpha = (est * ref).sum(-1) / ref_energy.clamp_min(torch.finfo(torch.float64).tiny)
    target = alpha[..., None] * ref
    num = (target * target).sum(-1)
    den = ((target - est) ** 2).sum(-1)
    # log10(0) = -inf and x/0 = inf are clamped below; num == 0 (silent estimate, where den is
    # 0 too and the ratio is 0/0) is the floor
    out = (10 * (torch.log10(num) - torch.log10(den))).clamp(MIN_DB, MAX_DB)
    out = torch.where(num == 0, torch.full_like(out, MIN_DB), out)
    out = torch.where(est.isnan().any(-1), torch.full_like(out, float("nan")), out)
    return torch.where(ref_energy > silent, out, torch.full_like(out, float("nan")))


def _flat(x: torch.Tensor) -> torch.Tensor:
    """``(batch, sources, channels, samples)`` -> ``(batch, sources, channels * samples)``."""
    return x.flatten(-2)


def l1_loss(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean absolute waveform error over ``(batch, sources, channels, samples)`` (scalar)."""
    return (estimate - reference).abs().mean()


def pairwise_l1(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Pairwise L1 matrix for PIT: ``(batch, i, j)`` = mean ``|reference_i - estimate_j|``.

    Args:
        estimate, reference: ``(batch, n_sources, samples)``.
    """
    return (reference[:, :, None] - estimate[:, None, :]).abs().mean(-1)


def neg_sisdr_loss(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Negative SI-SDR (dB) averaged over batch and sources (asteroid's ``singlesrc_neg_sisdr``).

    Args:
        estimate, reference: ``(batch, n_sources, channels, samples)``.
    """
    from asteroid.losses import singlesrc_neg_sisdr

    est, ref = _flat(estimate), _flat(reference)
    return singlesrc_neg_sisdr(est.flatten(0, 1), ref.flatten(0, 1)).mean()


class SeparationLoss(torch.nn.Module):
    """Waveform L1 or negative SI-SDR, optionally permutation invariant.

    Args:
        name: ``"l1"`` or ``"sisdr"`` (negative SI-SDR).
        pit: find the best source permutation per example (asteroid ``PITLossWrapper``); only
            for unordered sources.

    Call:
        ``loss(estimate, reference)`` with ``(batch, n_sources, channels, samples)`` tensors
        returns ``(scalar loss, estimate reordered to the reference order)``.

    Raises:
        ConfigError: unknown loss name.
    """

    def __init__(self, name: str = "l1", pit: bool = False) -> None:
        super().__init__()
        if name not in LOSSES:
            raise ConfigError(f"unknown loss {name!r} (choose from {', '.join(LOSSES)})")
        self.name, self.pit = name, bool(pit)
        self._pit = None
        if self.pit:
            from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr

            pairwise: Callable = pairwise_neg_sisdr if name == "sisdr" else pairwise_l1
            self._pit = PITLossWrapper(pairwise, pit_from="pw_mtx")

    def forward(
        self, estimate: torch.Tensor, reference: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss of a batch.

        Args:
            estimate: ``(batch, n_sources, channels, samples)`` model output.
            reference: same shape, the true sources in their fixed order.

        Returns:
            ``(loss, estimate)``: the scalar loss (mean over batch and sources) and the estimate
            reordered to the reference's source order (the best permutation with ``pit``,
            else ``estimate`` itself).
        """
        if self._pit is not None:
            loss, reordered = self._pit(_flat(estimate), _flat(reference), return_est=True)
            return loss, reordered.reshape(estimate.shape)
        if self.name == "l1":
            return l1_loss(estimate, reference), estimate
        return neg_sisdr_loss(estimate, reference), estimate
