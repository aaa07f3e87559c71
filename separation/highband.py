"""Full-band stems from a band-limited separator: the input's high band, shared out by mask.

A model that runs at ``model_rate`` Hz separates only the band below ``fn = model_rate / 2``;
its estimates, resampled to the input's rate, are empty above that. :class:`HighBandExtension`
gives every stem the input's own high band, split between the stems in proportion to their
energy in the top of the band the model did separate (``[fn / 2, 0.8 fn]``), frame by frame.
Harmonics above ``fn`` mostly belong to the part that is loud just below it, so this keeps
each stem's brightness where the plain estimates would lose it. It is the "band-split" idea
of Luo & Yu 2023 (BSRNN: each band gets its own estimator) with the cheapest estimator for
the top band: a ratio mask carried over from the band below, in the spirit of spectral band
replication (Dietz et al. 2002).

What is shared out is the **residual** of the input over the sum of the estimates,
``X - sum_k E_k``, weighted by a raised cosine that rises from 0 at ``0.8 fn`` to 1 at
``0.9 fn``: above ``fn`` the estimates are empty, so the residual is the input's band; between
``0.9 fn`` and ``fn`` it fills in exactly what the resampler's anti-aliasing filter removed.
The shares sum to one, so wherever the weight is one the stems sum to the input. The
short-time Fourier transform uses square-root Hann analysis and synthesis windows with a hop
of a quarter window (perfect reconstruction).

Cost: the transforms are linear and a stem's share is one number per frame, so the residual
is transformed once per channel (``x - sum_k e_k`` in time), and its masked inverse is computed
once per channel and scaled by each stem's share; only the reference band needs the stems'
own transforms. Buffers are float32.

It streams: :meth:`push` takes the next input block and the next estimate block (any sizes),
and returns the full-band estimates that became final; :meth:`finish` flushes the rest.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from wb.errors import WbError

REFERENCE_BAND = (0.5, 0.8)  # where the shares are measured, as fractions of fn
# where the extension fades in: below 0.8 fn soxr's "HQ" passband is flat, above 0.9 fn its
# anti-aliasing filter has started to roll the estimates off (measured: -1.5 dB at 0.92 fn)
FADE_BAND = (0.8, 0.9)
FRAMES_PER_BATCH = 256  # STFT frames transformed at once (bounds the working memory)


class HighBandExtension:
    """Add the input's band above ``model_rate / 2`` to the stems, split by energy ratio.

    Args:
        n_sources: number of stems (all the model's sources: the masks are shares of them).
        channels: input channels (1 or 2); the mask of a stem is shared by its channels.
        sample_rate: the input's rate in Hz.
        model_rate: the separator's rate in Hz (below ``sample_rate``).
        window_seconds: STFT window length (rounded to a power of two samples; default
            46 ms, 2048 samples at 44.1 kHz).

    Raises:
        WbError: ``model_rate`` not below ``sample_rate``.
    """

    def __init__(
        self,
        n_sources: int,
        channels: int,
        sample_rate: int,
        model_rate: int,
        window_seconds: float = 0.046,
    ) -> None:
        if not 0 < model_rate < sample_rate:
            raise WbError(
                f"high-band extension needs a model rate below the input's ({model_rate} Hz "
                f"vs {sample_rate} Hz)"
            )
        self.n = 2 ** max(6, round(math.log2(window_seconds * sample_rate)))
        self.hop = self.n // 4
        self.k, self.c = int(n_sources), int(channels)
        self.window = np.sqrt(np.hanning(self.n + 1)[:-1]).astype(np.float32)  # periodic
        # sqrt-Hann analysis x synthesis = Hann, whose shifts by n/4 sum to 2
        self.norm = 2.0
        freqs = np.fft.rfftfreq(self.n, 1.0 / sample_rate)
        fn = model_rate / 2.0
        lo, hi = FADE_BAND[0] * fn, FADE_BAND[1] * fn
        ramp = np.clip((freqs - lo) / (hi - lo), 0.0, 1.0)
        self.weight = (0.5 - 0.5 * np.cos(np.pi * ramp)).astype(np.float32)  # 0 below lo
        self.reference = (freqs >= REFERENCE_BAND[0] * fn) & (freqs < REFERENCE_BAND[1] * fn)
        if not self.reference.any():
            raise WbError(f"model rate {model_rate} Hz is too low for a reference band")
        pad = self.n - self.hop  # leading zeros: every sample is covered by n / hop frames
        self._x = np.zeros((self.c, pad), np.float32)
        self._e = np.zeros((self.k, self.c, pad), np.float32)
        self._acc = np.zeros((self.k, self.c, self.n), np.float32)
        self._skip = pad  # leading output samples that belong to the padding
        self._done = False

    def push(self, mixture: torch.Tensor, estimates: torch.Tensor) -> torch.Tensor:
        """Feed the next input block and the next estimate block.

        Args:
            mixture: ``(channels, n)`` at the input's rate.
            estimates: ``(n_sources, channels, m)``: the band-limited stems at the input's
                rate, aligned with ``mixture`` from the first sample on (any ``m``).

        Returns:
            ``(n_sources, channels, r)`` float32 full-band stems that became final.
        """
        if self._done:
            raise WbError("push() after finish()")
        mixture = torch.as_tensor(mixture).detach().cpu().numpy()
        estimates = torch.as_tensor(estimates).detach().cpu().numpy()
        self._x = np.concatenate([self._x, mixture.astype(np.float32)], axis=-1)
        self._e = np.concatenate([self._e, estimates.astype(np.float32)], axis=-1)
        return self._process(final=False)

    def finish(self) -> torch.Tensor:
        """End of both streams (they must have the same total length): the rest."""
        if self._done:
            raise WbError("finish() called twice")
        self._done = True
        if self._x.shape[-1] != self._e.shape[-1]:
            raise WbError(
                f"mixture and estimates ended at different lengths ({self._x.shape[-1]} vs "
                f"{self._e.shape[-1]} buffered samples)"
            )
        return self._process(final=True)

    def _process(self, final: bool) -> torch.Tensor:
        avail = min(self._x.shape[-1], self._e.shape[-1])
        end = avail
        if final:  # zeros after the end so the last samples get all their frames
            tail = self.n
            self._x = np.pad(self._x[..., :avail], ((0, 0), (0, tail)))
            self._e = np.pad(self._e[..., :avail], ((0, 0), (0, 0), (0, tail)))
            avail += tail
        frames = (avail - self.n) // self.hop + 1 if avail >= self.n else 0
        for first in range(0, frames, FRAMES_PER_BATCH):
            self._add_frames(first, min(frames, first + FRAMES_PER_BATCH))
        ready = frames * self.hop if not final else end
        out = self._e[..., :ready] + self._acc[..., :ready] / self.norm
        self._x, self._e = self._x[..., ready:], self._e[..., ready:]
        self._acc = self._acc[..., ready:]
        if self._acc.shape[-1] < self.n:
            self._acc = np.pad(self._acc, ((0, 0), (0, 0), (0, self.n - self._acc.shape[-1])))
        drop = min(self._skip, out.shape[-1])
        self._skip -= drop
        return torch.from_numpy(np.ascontiguousarray(out[..., drop:], dtype=np.float32))

    def _add_frames(self, first: int, last: int) -> None:
        """STFT frames ``first..last-1`` (frame ``f`` starts at buffer sample ``f * hop``) and
        overlap-add their share of the high band."""
        from numpy.lib.stride_tricks import sliding_window_view

        start, span = first * self.hop, (last - first - 1) * self.hop + self.n
        frames = last - first
        x = self._x[..., start : start + span]
        e = self._e[..., start : start + span]
        ef = sliding_window_view(e, self.n, axis=-1)[..., :: self.hop, :]  # (K, C, F, n)
        rf = sliding_window_view(x - e.sum(axis=0), self.n, axis=-1)[..., :: self.hop, :]
        E = np.fft.rfft(ef * self.window, axis=-1)[..., self.reference]  # (K, C, F, ref bins)
        energy = (E.real**2 + E.imag**2).sum(axis=(1, 3))  # (K, F)
        total = energy.sum(axis=0, keepdims=True)
        share = np.where(total > 0, energy / np.where(total > 0, total, 1.0), 1.0 / self.k)
        residual = np.fft.rfft(rf * self.window, axis=-1) * self.weight  # (C, F, bins)
        chunks = np.fft.irfft(residual, n=self.n, axis=-1) * self.window  # (C, F, n)
        # overlap-add: frame f covers hops f..f+3 (hop = n / 4)
        # (a stem's share is per frame, so it scales each frame's chunk before the sum)
        quarters = chunks.reshape(self.c, frames, 4, self.hop)
        shared = np.zeros((self.k, self.c, frames + 3, self.hop), np.float32)
        weighted = quarters[None] * share[:, None, :, None, None].astype(np.float32)
        for j in range(4):
            shared[:, :, j : j + frames] += weighted[:, :, :, j]
        end = start + span
        if self._acc.shape[-1] < end:
            self._acc = np.pad(self._acc, ((0, 0), (0, 0), (0, end - self._acc.shape[-1])))
        self._acc[..., start:end] += shared.reshape(self.k, self.c, -1)
