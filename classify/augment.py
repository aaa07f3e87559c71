"""Training-time augmentation, batched on the model's device and off in ``eval()`` mode.

Every transform draws per example: with probability ``p`` the example is changed, otherwise it
passes through untouched; ``p=0`` (or ``model.eval()``) is the identity. Randomness comes from
torch's global generator, which :class:`classify.system.ClassifierSystem` reseeds at every
step from ``(seed, step)`` so a resumed run draws exactly the same augmentations.

Waveform transforms take ``(batch, samples)``:

* :class:`TimeShift`  -- circular shift by up to ``max_seconds``.
* :class:`Gain`       -- uniform random gain in dB.
* :class:`AddNoise`   -- white noise, or a random excerpt of a background recording from a
  folder, at a uniform random SNR in dB.
* :class:`Speed`      -- speed perturbation by resampling (Ko et al. 2015).
* :class:`TimeStretch` -- tempo change without pitch change (phase vocoder).
* :class:`PitchShift` -- phase vocoder + resampling (the method of
  :func:`torchaudio.functional.pitch_shift`) by a random whole number of semitones.

Feature transforms take ``(batch, 1, bins, frames)``:

* :class:`SpecAugment` -- time and frequency masks (Park et al. 2019, "SpecAugment: A Simple
  Data Augmentation Method for Automatic Speech Recognition"), with
  :class:`torchaudio.transforms.TimeMasking` / :class:`~torchaudio.transforms.FrequencyMasking`.

Label mixing:

* :class:`Mixup` -- convex combination of pairs of waveforms and of their (soft) targets with
  ``lambda ~ Beta(alpha, alpha)`` (Zhang et al. 2018, "mixup: Beyond Empirical Risk
  Minimization").

:class:`Augmentation` bundles them from the ``augment:`` config group.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torchaudio
from torch import nn

from wb.errors import ConfigError


def _chosen(batch: int, p: float, device: torch.device) -> torch.Tensor:
    """Boolean mask ``(batch,)``: which examples get the transform."""
    if p <= 0:
        return torch.zeros(batch, dtype=torch.bool, device=device)
    if p >= 1:
        return torch.ones(batch, dtype=torch.bool, device=device)
    return torch.rand(batch, device=device) < p


def _uniform(batch: int, low: float, high: float, device: torch.device) -> torch.Tensor:
    return low + (high - low) * torch.rand(batch, device=device)


def _check_p(name: str, p: float) -> float:
    if not 0.0 <= float(p) <= 1.0:
        raise ConfigError(f"augment.{name}.p must be in [0, 1], got {p}")
    return float(p)


class TimeShift(nn.Module):
    """Random circular time shift of whole waveforms.

    Args:
        sample_rate: in Hz.
        p: probability per example.
        max_seconds: largest shift in seconds (either direction).

    Shapes:
        ``(batch, samples)`` -> same.
    """

    def __init__(self, sample_rate: int, p: float = 0.0, max_seconds: float = 0.1) -> None:
        super().__init__()
        self.p, self.max_shift = _check_p("time_shift", p), int(round(max_seconds * sample_rate))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shift each chosen example by a random number of samples (wrapping around)."""
        if not self.training or self.p == 0 or self.max_shift == 0:
            return x
        b, n = x.shape
        chosen = _chosen(b, self.p, x.device)
        shifts = torch.randint(-self.max_shift, self.max_shift + 1, (b,), device=x.device)
        shifts = torch.where(chosen, shifts, torch.zeros_like(shifts))
        idx = (torch.arange(n, device=x.device)[None, :] - shifts[:, None]) % n
        return torch.gather(x, 1, idx)


class Gain(nn.Module):
    """Random gain, uniform in dB.

    Args:
        p: probability per example.
        min_db: smallest gain in dB.
        max_db: largest gain in dB.

    Shapes:
        ``(batch, samples)`` -> same.
    """

    def __init__(self, p: float = 0.0, min_db: float = -6.0, max_db: float = 6.0) -> None:
        super().__init__()
        if min_db > max_db:
            raise ConfigError(f"augment.gain: min_db={min_db} exceeds max_db={max_db}")
        self.p, self.min_db, self.max_db = _check_p("gain", p), float(min_db), float(max_db)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Multiply each chosen example by ``10 ** (g / 20)``, ``g ~ U(min_db, max_db)``."""
        if not self.training or self.p == 0:
            return x
        b = x.shape[0]
        db = _uniform(b, self.min_db, self.max_db, x.device)
        db = torch.where(_chosen(b, self.p, x.device), db, torch.zeros_like(db))
        return x * (10.0 ** (db / 20.0))[:, None]


class AddNoise(nn.Module):
    """Additive noise at a random signal-to-noise ratio.

    Args:
        sample_rate: in Hz (background files are resampled to it).
        p: probability per example.
        min_snr_db: lowest SNR in dB.
        max_snr_db: highest SNR in dB.
        noise_dir: folder of background recordings (searched recursively for
            wav/flac/ogg/mp3); ``None`` uses white Gaussian noise.
        max_files: at most this many background files are loaded (sorted by path).

    Shapes:
        ``(batch, samples)`` -> same.

    Raises:
        ConfigError: ``noise_dir`` missing or holding no audio files.
        AudioError: an unreadable background file.
    """

    def __init__(
        self,
        sample_rate: int,
        p: float = 0.0,
        min_snr_db: float = 10.0,
        max_snr_db: float = 30.0,
        noise_dir: str | None = None,
        max_files: int = 200,
    ) -> None:
        super().__init__()
        if min_snr_db > max_snr_db:
            raise ConfigError(f"augment.noise: min_snr_db={min_snr_db} exceeds max_snr_db")
        self.p, self.lo, self.hi = _check_p("noise", p), float(min_snr_db), float(max_snr_db)
        self.bank: list[torch.Tensor] = []
        if noise_dir and self.p > 0:
            from wb.audio import load

            root = Path(noise_dir)
            if not root.is_dir():
                raise ConfigError(f"augment.noise.noise_dir={noise_dir}: no such folder")
            files = sorted(
                f for f in root.rglob("*") if f.suffix.lower() in (".wav", ".flac", ".ogg", ".mp3")
            )[:max_files]
            if not files:
                raise ConfigError(f"augment.noise.noise_dir={noise_dir}: no audio files in it")
            self.bank = [load(f, sample_rate=sample_rate, channels=1)[0][0] for f in files]

    def _noise(self, b: int, n: int, device: torch.device) -> torch.Tensor:
        if not self.bank:
            return torch.randn(b, n, device=device)
        out = torch.empty(b, n)
        picks = torch.randint(len(self.bank), (b,)).tolist()
        for i, k in enumerate(picks):
            rec = self.bank[k]
            if rec.shape[0] < n:
                rec = rec.repeat(n // rec.shape[0] + 1)
            start = int(torch.randint(rec.shape[0] - n + 1, ()).item())
            out[i] = rec[start : start + n]
        return out.to(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Add noise scaled so that ``10 log10(P_signal / P_noise)`` equals the drawn SNR."""
        if not self.training or self.p == 0:
            return x
        b, n = x.shape
        chosen = _chosen(b, self.p, x.device)
        if not bool(chosen.any()):
            return x
        noise = self._noise(b, n, x.device)
        snr = _uniform(b, self.lo, self.hi, x.device)
        p_sig = x.pow(2).mean(dim=1).clamp_min(1e-10)
        p_noise = noise.pow(2).mean(dim=1).clamp_min(1e-10)
        scale = torch.sqrt(p_sig / (p_noise * 10.0 ** (snr / 10.0)))
        scale = torch.where(chosen, scale, torch.zeros_like(scale))
        return x + noise * scale[:, None]


def pitch_shift(x: torch.Tensor, n_steps: float, n_fft: int = 256, max_denominator: int = 32):
    """Shift pitch by ``n_steps`` semitones keeping the duration (torchaudio primitives).

    Same method as :func:`torchaudio.functional.pitch_shift` -- phase-vocoder time stretch
    (:func:`torchaudio.functional.phase_vocoder`) by ``rate = 2 ** (-n_steps / 12)`` then
    band-limited resampling by ``rate`` -- except that ``rate`` is rounded to a fraction
    ``p / q`` with ``q <= max_denominator`` (error below 0.03 semitone for |n_steps| <= 4),
    so the resampling kernel stays small; torchaudio's version resamples between rates like
    7127 Hz and 8000 Hz, whose kernel is thousands of phases long and very slow.

    Args:
        x: waveforms ``(batch, samples)``.
        n_steps: semitones (positive = higher).
        n_fft: STFT size (Hann window, hop ``n_fft // 4``).
        max_denominator: largest denominator of the rate fraction.

    Returns:
        ``(batch, samples)``.
    """
    from fractions import Fraction

    n = x.shape[-1]
    frac = Fraction(2.0 ** (-float(n_steps) / 12.0)).limit_denominator(max_denominator)
    rate = frac.numerator / frac.denominator
    hop = n_fft // 4
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop, window=window, return_complex=True)
    advance = torch.linspace(0, torch.pi * hop, spec.shape[-2], device=x.device)[..., None]
    stretched = torchaudio.functional.phase_vocoder(spec, rate, advance)
    y = torch.istft(stretched, n_fft, hop, window=window, length=int(round(n / rate)))
    y = torchaudio.functional.resample(y, frac.denominator, frac.numerator)
    if y.shape[-1] >= n:
        return y[..., :n]
    return torch.nn.functional.pad(y, (0, n - y.shape[-1]))


class PitchShift(nn.Module):
    """Random pitch shift by a whole number of semitones (duration unchanged).

    Uses :func:`pitch_shift` (phase vocoder + resampling, as
    :func:`torchaudio.functional.pitch_shift`). Examples with the same draw are processed
    together.

    Args:
        sample_rate: in Hz (kept for the config interface; the shift is rate-independent).
        p: probability per example.
        semitones: shifts are drawn uniformly from ``[-semitones, semitones]`` excluding 0.
        n_fft: STFT size of the phase vocoder.

    Shapes:
        ``(batch, samples)`` -> same.
    """

    def __init__(self, sample_rate: int, p: float = 0.0, semitones: int = 2, n_fft: int = 256):
        super().__init__()
        if int(semitones) < 1 and p > 0:
            raise ConfigError(f"augment.pitch_shift.semitones must be >= 1, got {semitones}")
        self.p, self.sr = _check_p("pitch_shift", p), int(sample_rate)
        self.semitones, self.n_fft = int(semitones), int(n_fft)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shift each chosen example by ``k`` semitones, ``k`` uniform in ``±1..semitones``."""
        if not self.training or self.p == 0 or self.semitones < 1:
            return x
        b = x.shape[0]
        chosen = _chosen(b, self.p, x.device)
        steps = torch.randint(1, self.semitones + 1, (b,), device=x.device)
        steps = steps * (torch.randint(0, 2, (b,), device=x.device) * 2 - 1)
        out = x.clone()
        for k in torch.unique(steps[chosen]).tolist():
            sel = chosen & (steps == k)
            out[sel] = pitch_shift(x[sel], int(k), self.n_fft).to(x.dtype)
        return out


def time_stretch(x: torch.Tensor, rate: float, n_fft: int = 256) -> torch.Tensor:
    """Change tempo by ``rate`` keeping the pitch (phase vocoder, Flanagan & Golden 1966).

    Args:
        x: waveforms ``(batch, samples)``.
        rate: speed factor (> 1 faster and shorter, < 1 slower and longer).
        n_fft: STFT size (Hann window, hop ``n_fft // 4``).

    Returns:
        ``(batch, round(samples / rate))``.

    Raises:
        ValueError: ``rate <= 0``, or fewer than ``n_fft // 2 + 1`` samples (the STFT's
            reflect padding needs them).
    """
    if rate <= 0:
        raise ValueError(f"time_stretch: rate must be > 0, got {rate}")
    if x.shape[-1] <= n_fft // 2:
        raise ValueError(f"time_stretch: need more than {n_fft // 2} samples, got {x.shape[-1]}")
    hop = n_fft // 4
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop, window=window, return_complex=True)
    advance = torch.linspace(0, torch.pi * hop, spec.shape[-2], device=x.device)[..., None]
    stretched = torchaudio.functional.phase_vocoder(spec, float(rate), advance)
    return torch.istft(stretched, n_fft, hop, window=window, length=int(round(x.shape[-1] / rate)))


def _fit_length(y: torch.Tensor, n: int) -> torch.Tensor:
    """Centre-crop or zero-pad (centred) ``(batch, m)`` to ``(batch, n)``."""
    m = y.shape[-1]
    if m >= n:
        start = (m - n) // 2
        return y[:, start : start + n]
    left = (n - m) // 2
    return torch.nn.functional.pad(y, (left, n - m - left))


class TimeStretch(nn.Module):
    """Random tempo change without pitch change (phase vocoder), e.g. for speaking rate.

    ``rate`` is drawn uniformly from ``[min_rate, max_rate]`` and rounded to 0.05 (so examples
    with the same rate are processed together; a draw that rounds to 1.0 is left unchanged);
    the result is centre-cropped or zero-padded back to the input length.

    Args:
        sample_rate: in Hz (kept for the config interface).
        p: probability per example.
        min_rate: slowest tempo factor (0.8 = 25 % longer), at least 0.05.
        max_rate: fastest tempo factor.
        n_fft: STFT size of the phase vocoder; inputs need more than ``n_fft // 2`` samples.

    Shapes:
        ``(batch, samples)`` -> same.

    Raises:
        ConfigError: ``p`` outside [0, 1] or not ``0.05 <= min_rate <= max_rate``.
    """

    def __init__(
        self,
        sample_rate: int,
        p: float = 0.0,
        min_rate: float = 0.8,
        max_rate: float = 1.25,
        n_fft: int = 256,
    ) -> None:
        super().__init__()
        if not 0.05 <= min_rate <= max_rate:
            raise ConfigError(
                "augment.time_stretch: need 0.05 <= min_rate <= max_rate, "
                f"got {min_rate}, {max_rate}"
            )
        self.p, self.lo, self.hi = _check_p("time_stretch", p), float(min_rate), float(max_rate)
        self.n_fft = int(n_fft)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Stretch each chosen example; see the class docstring."""
        if not self.training or self.p == 0:
            return x
        b, n = x.shape
        chosen = _chosen(b, self.p, x.device).tolist()
        rates = _uniform(b, self.lo, self.hi, torch.device("cpu")).tolist()
        groups: dict[float, list[int]] = {}
        for i in range(b):
            r = round(rates[i] * 20) / 20
            if chosen[i] and r != 1.0:
                groups.setdefault(r, []).append(i)
        out = x.clone()
        for r, idx in groups.items():
            out[idx] = _fit_length(time_stretch(x[idx], r, self.n_fft), n).to(x.dtype)
        return out


class Speed(nn.Module):
    """Speed perturbation (Ko et al. 2015, "Audio augmentation for speech recognition").

    Resamples the waveform so that it plays ``rate`` times faster (tempo and pitch change
    together, like a tape played at another speed), then centre-crops or zero-pads back to the
    input length. ``rate`` is drawn uniformly from ``[min_rate, max_rate]`` and rounded to a
    multiple of 0.05 (a fraction k/20: small resampling kernels); examples with the same rate
    are processed together.

    Args:
        sample_rate: in Hz (kept for the config interface; the operation is rate-free).
        p: probability per example.
        min_rate: slowest speed factor (e.g. 0.9 = 10 % slower, 1.8 semitones lower).
        max_rate: fastest speed factor.

    Shapes:
        ``(batch, samples)`` -> same.
    """

    def __init__(
        self, sample_rate: int, p: float = 0.0, min_rate: float = 0.9, max_rate: float = 1.1
    ) -> None:
        super().__init__()
        if not 0 < min_rate <= max_rate:
            raise ConfigError(
                f"augment.speed: need 0 < min_rate <= max_rate, got {min_rate}, {max_rate}"
            )
        self.p, self.lo, self.hi = _check_p("speed", p), float(min_rate), float(max_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Change the speed of each chosen example; see the class docstring."""
        if not self.training or self.p == 0 or self.lo == self.hi == 1.0:
            return x
        from fractions import Fraction

        b, n = x.shape
        chosen = _chosen(b, self.p, x.device).tolist()
        rates = _uniform(b, self.lo, self.hi, torch.device("cpu")).tolist()
        groups: dict[Fraction, list[int]] = {}
        for i in range(b):
            if chosen[i]:
                frac = Fraction(round(rates[i] * 20), 20)  # steps of 0.05
                if frac != 1:
                    groups.setdefault(frac, []).append(i)
        out = x.clone()
        for frac, idx in groups.items():
            y = torchaudio.functional.resample(x[idx], frac.numerator, frac.denominator)
            out[idx] = _fit_length(y, n).to(x.dtype)
        return out


class SpecAugment(nn.Module):
    """SpecAugment time and frequency masking (Park et al. 2019), per example.

    Args:
        p: probability per example of applying the masks.
        time_mask: largest time-mask width in frames (0: none).
        freq_mask: largest frequency-mask width in bins (0: none).
        n_time_masks: number of time masks.
        n_freq_masks: number of frequency masks.

    Shapes:
        ``(batch, 1, bins, frames)`` -> same. Masked cells take the example's mean value
        (0 would be loud for dB features).
    """

    def __init__(
        self,
        p: float = 0.0,
        time_mask: int = 10,
        freq_mask: int = 8,
        n_time_masks: int = 2,
        n_freq_masks: int = 2,
    ) -> None:
        super().__init__()
        self.p = _check_p("spec_augment", p)
        self.n_time, self.n_freq = int(n_time_masks), int(n_freq_masks)
        self.time = torchaudio.transforms.TimeMasking(int(time_mask), iid_masks=True)
        self.freq = torchaudio.transforms.FrequencyMasking(int(freq_mask), iid_masks=True)
        self.widths = (int(time_mask), int(freq_mask))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mask random time and frequency stripes of the chosen examples."""
        if not self.training or self.p == 0:
            return x
        chosen = _chosen(x.shape[0], self.p, x.device)
        if not bool(chosen.any()):
            return x
        fill = x.mean(dim=(1, 2, 3), keepdim=True)
        y = x - fill  # torchaudio masks with 0; mask the centred features
        for _ in range(self.n_time if self.widths[0] > 0 else 0):
            y = self.time(y)
        for _ in range(self.n_freq if self.widths[1] > 0 else 0):
            y = self.freq(y)
        y = y + fill
        return torch.where(chosen[:, None, None, None], y, x)


class Mixup(nn.Module):
    """mixup (Zhang et al. 2018): ``x = lam x_i + (1 - lam) x_j``, same for soft targets.

    Args:
        p: probability that a batch is mixed.
        alpha: ``lam ~ Beta(alpha, alpha)``; per example.

    Shapes:
        ``x (batch, ...)``, ``targets (batch, n_classes)`` -> same shapes.
    """

    def __init__(self, p: float = 0.0, alpha: float = 0.2) -> None:
        super().__init__()
        if alpha <= 0 and p > 0:
            raise ConfigError(f"augment.mixup.alpha must be positive, got {alpha}")
        self.p, self.alpha = _check_p("mixup", p), float(alpha)

    def forward(self, x: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix the batch with a random permutation of itself."""
        if not self.training or self.p == 0 or x.shape[0] < 2:
            return x, targets
        if float(torch.rand(())) >= self.p:
            return x, targets
        b = x.shape[0]
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample((b,)).to(x.device)
        lam = torch.maximum(lam, 1 - lam)  # the first example dominates
        perm = torch.randperm(b, device=x.device)
        shape = (b,) + (1,) * (x.dim() - 1)
        mixed = lam.view(shape) * x + (1 - lam.view(shape)) * x[perm]
        mixed_t = lam[:, None] * targets + (1 - lam[:, None]) * targets[perm]
        return mixed, mixed_t


#: Config group name -> transform class (the ``augment:`` group's sub-groups).
GROUPS = {
    "time_shift": TimeShift,
    "gain": Gain,
    "noise": AddNoise,
    "pitch_shift": PitchShift,
    "speed": Speed,
    "time_stretch": TimeStretch,
    "spec_augment": SpecAugment,
    "mixup": Mixup,
}
_NEEDS_SR = ("time_shift", "noise", "pitch_shift", "speed", "time_stretch")


class Augmentation(nn.Module):
    """All augmentations, built from the ``augment:`` config group.

    Args:
        sample_rate: waveform sample rate in Hz.
        time_shift, gain, noise, pitch_shift, speed, time_stretch, spec_augment, mixup: kwargs
            of :class:`TimeShift`, :class:`Gain`, :class:`AddNoise`, :class:`PitchShift`,
            :class:`Speed`, :class:`TimeStretch`, :class:`SpecAugment`, :class:`Mixup`
            (``None``/absent: disabled).

    Raises:
        ConfigError: an unknown group or key, or an invalid value.
    """

    def __init__(self, sample_rate: int, **groups: Mapping[str, Any] | None) -> None:
        super().__init__()
        unknown = sorted(set(groups) - set(GROUPS))
        if unknown:
            raise ConfigError(
                f"augment: unknown group(s) {', '.join(unknown)} (known: {', '.join(GROUPS)})"
            )
        for name, cls in GROUPS.items():
            kwargs = dict(groups.get(name) or {})
            if name in _NEEDS_SR:
                kwargs["sample_rate"] = sample_rate
            try:
                setattr(self, name, cls(**kwargs))
            except TypeError as exc:
                raise ConfigError(f"augment.{name}: {exc}") from None

    def wave(self, x: torch.Tensor) -> torch.Tensor:
        """Waveform augmentations (shift, stretch, speed, pitch, gain, noise), ``(batch, samples)``.

        Returns the augmented batch, same shape.
        """
        x = self.time_shift(x)
        x = self.time_stretch(x)
        x = self.speed(x)
        x = self.pitch_shift(x)
        x = self.gain(x)
        return self.noise(x)

    def spec(self, feats: torch.Tensor) -> torch.Tensor:
        """SpecAugment on ``(batch, 1, bins, frames)``."""
        return self.spec_augment(feats)

    def mix(self, x: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mixup on inputs ``(batch, ...)`` and soft targets ``(batch, n_classes)``."""
        return self.mixup(x, targets)
