"""Front ends (waveform -> time-frequency image) and the length policy for variable-length clips.

Front ends are :class:`torch.nn.Module` s that run batched on the model's device, so feature
extraction costs one STFT per batch instead of one librosa call per file:

* :class:`Frontend` with ``kind="logmel"``: power mel spectrogram
  (:class:`torchaudio.transforms.MelSpectrogram`) then decibels (``10 log10``, per-example
  ``top_db`` floor, as :func:`librosa.power_to_db`) or natural log ``log(x + eps)``.
* ``kind="mfcc"``: DCT-II (orthonormal) of the dB log-mel, as :func:`librosa.feature.mfcc`.
* ``kind="logfreq"``: a log-frequency (constant-Q-like) power spectrogram,
  :func:`log_frequency_filterbank` over one STFT, ``bins_per_octave`` bins per octave from
  ``f_min`` to ``f_max``, then the same log. Musical pitch is a shift along its frequency
  axis, so a convolutional head sees a transposed chord as the same pattern (harmony,
  texture); the mel scale is near-linear below 1 kHz, where one band spans several
  semitones.
* ``kind="chroma"``: the ``logfreq`` power folded onto one octave: row ``r`` sums the log
  bins ``k`` with ``k % bins_per_octave == r`` (pitch-class energy, as the chromagram of
  Bartsch & Wakefield, IEEE WASPAA 2001, and the pitch histograms of Tzanetakis & Cook,
  IEEE TSAP 2002, use for genre and style), then the same log. Row 0 is the pitch class of
  ``f_min`` (32.70 Hz: C). It keeps harmony and drops register and most of the timbre.
* :class:`FrequencyNorm`: optional per-frequency-bin standardisation whose mean and standard
  deviation are fitted on the training folds only (:meth:`FrequencyNorm.fit`) and stored as
  buffers, so an exported model carries them.

Input ``(batch, samples)`` or ``(batch, 1, samples)``; output ``(batch, 1, bins, frames)``
with ``frames = 1 + samples // hop_length`` (centred frames).

The length policy (:class:`LengthPolicy`) makes every example the same duration: shorter
clips are padded (zeros, repetition, or low-level noise), longer clips cropped (random crop in
training; centre crop or sliding windows whose logits are averaged in evaluation).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torchaudio
from torch import nn

from wb.errors import ConfigError

FRONTEND_KINDS = ("logmel", "mfcc", "logfreq", "chroma")
PAD_MODES = ("zero", "repeat", "noise")


def log_frequency_filterbank(
    sample_rate: int, n_fft: int, fmin: float, fmax: float, bins_per_octave: int
) -> torch.Tensor:
    """Triangular filters centred on a log-frequency grid.

    Filter ``k`` is centred on ``fmin * 2 ** (k / bins_per_octave)`` Hz; its
    half-width is one grid step or one STFT bin, whichever is wider (so low filters, finer
    than the STFT resolution, interpolate between bins instead of coming out empty). Each
    filter sums to 1.

    Applied to one STFT, this gives a log-frequency spectrogram: an approximation of the
    constant-Q transform (Brown, JASA 1991) at the cost of one STFT, as madmom's
    ``LogarithmicFilterbank`` builds it.

    Args:
        sample_rate: Hz; n_fft: STFT size in samples; fmin, fmax: grid range in Hz;
        bins_per_octave: grid resolution (12: one bin per semitone).

    Returns:
        ``(n_fft // 2 + 1, n_bins)`` weights, ``n_bins = floor(bins_per_octave *
        log2(fmax / fmin)) + 1``.

    Raises:
        ValueError: ``fmin`` not in ``(0, fmax)`` or ``fmax`` above the Nyquist frequency.
    """
    if not 0 < fmin < fmax <= sample_rate / 2:
        raise ValueError(f"need 0 < fmin < fmax <= {sample_rate / 2} Hz, got {fmin}, {fmax}")
    n_bins = int(math.floor(bins_per_octave * math.log2(fmax / fmin))) + 1
    centres = fmin * 2.0 ** (torch.arange(n_bins, dtype=torch.float64) / bins_per_octave)
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    df = sample_rate / n_fft
    width = torch.maximum(centres * (2.0 ** (1 / bins_per_octave) - 1), torch.tensor(df))
    w = (1 - (freqs[:, None] - centres[None, :]).abs() / width[None, :]).clamp(min=0)
    return (w / w.sum(0, keepdim=True).clamp(min=1e-12)).float()


def as_batch(wave: torch.Tensor) -> torch.Tensor:
    """Return ``(batch, samples)`` from ``(batch, samples)`` or ``(batch, 1, samples)``.

    Raises:
        ConfigError: any other shape (e.g. stereo ``(batch, 2, samples)``).
    """
    if wave.dim() == 3 and wave.shape[1] == 1:
        return wave[:, 0]
    if wave.dim() == 2:
        return wave
    raise ConfigError(
        f"front end expects (batch, samples) or (batch, 1, samples), got {tuple(wave.shape)}"
    )


class Frontend(nn.Module):
    """Batched log-mel, MFCC, log-frequency or chroma front end.

    Args:
        kind: ``"logmel"``, ``"mfcc"``, ``"logfreq"`` or ``"chroma"``.
        sample_rate: input sample rate in Hz.
        n_fft: FFT size in samples.
        win_length: window length in samples (``None``: ``n_fft``); Hann window.
        hop_length: hop in samples (``None``: ``win_length // 4``).
        n_mels: number of mel bands.
        f_min: lowest mel band edge in Hz.
        f_max: highest mel band edge in Hz (``None``: ``sample_rate / 2``).
        power: 2.0 for a power spectrogram (1.0: magnitude).
        mel_scale: ``"slaney"`` (librosa default, ``htk=False``) or ``"htk"``.
        norm: ``"slaney"`` (area-normalised triangles, librosa default) or ``None``.
        log: ``"db"`` (``10 log10(max(x, amin))`` with a per-example ``top_db`` floor) or
            ``"log"`` (``log(x + eps)``).
        top_db: dynamic range kept below each example's peak in dB (``None``: no floor).
        amin: floor before the dB conversion (power units).
        eps: offset for ``log="log"``.
        n_mfcc: number of cepstral coefficients when ``kind="mfcc"``.
        bins_per_octave: resolution of ``kind="logfreq"`` and ``"chroma"`` (their ``f_min``
            must be above 0; ``chroma`` needs at least an octave up to ``f_max``).
        center: pad by ``n_fft // 2`` on both sides so frame ``t`` is centred at ``t * hop``.
        pad_mode: padding used with ``center`` (``"constant"`` as librosa >= 0.10, or
            ``"reflect"``).
        normalize: apply per-frequency standardisation (fit it with :meth:`fit_norm`).
        instance_norm: per-example normalisation of the log features before that:
            ``"none"``, ``"mean"`` (subtract each example's mean per frequency bin: cepstral /
            log-spectral mean normalisation, which removes a fixed channel response) or
            ``"meanvar"`` (also divide by the per-bin standard deviation). Statistics use only
            the example's active frames (frame peak within ``active_db`` dB of the example's
            peak), so padding and silence do not dominate them.
        active_db: threshold of active frames in dB below the example's peak.

    Shapes:
        input ``(batch, samples)`` or ``(batch, 1, samples)`` ->
        output ``(batch, 1, n_bins, frames)``, ``n_bins`` = ``n_mels``, ``n_mfcc``, or for
        ``logfreq`` ``floor(bins_per_octave * log2(f_max / f_min)) + 1``, for ``chroma``
        ``bins_per_octave``.

    Raises:
        ConfigError: unknown ``kind``/``log``/``mel_scale``, or inconsistent sizes
            (``win_length > n_fft``, ``f_max`` above Nyquist, ``n_mfcc > n_mels``, ``logfreq``
            or ``chroma`` with ``f_min`` 0, ``chroma`` over less than an octave).
    """

    def __init__(
        self,
        kind: str = "logmel",
        sample_rate: int = 16000,
        n_fft: int = 512,
        win_length: int | None = None,
        hop_length: int | None = None,
        n_mels: int = 64,
        f_min: float = 0.0,
        f_max: float | None = None,
        power: float = 2.0,
        mel_scale: str = "slaney",
        norm: str | None = "slaney",
        log: str = "db",
        top_db: float | None = 80.0,
        amin: float = 1e-10,
        eps: float = 1e-6,
        n_mfcc: int = 20,
        bins_per_octave: int = 36,
        center: bool = True,
        pad_mode: str = "constant",
        normalize: bool = False,
        instance_norm: str = "none",
        active_db: float = 40.0,
    ) -> None:
        super().__init__()
        if kind not in FRONTEND_KINDS:
            raise ConfigError(f"frontend.kind={kind!r}: choose from {', '.join(FRONTEND_KINDS)}")
        if log not in ("db", "log"):
            raise ConfigError(f"frontend.log={log!r}: choose db or log")
        if mel_scale not in ("slaney", "htk"):
            raise ConfigError(f"frontend.mel_scale={mel_scale!r}: choose slaney or htk")
        win_length = int(win_length or n_fft)
        hop_length = int(hop_length or win_length // 4)
        if win_length > n_fft:
            raise ConfigError(f"frontend.win_length={win_length} exceeds n_fft={n_fft}")
        f_max = float(f_max) if f_max is not None else sample_rate / 2
        if f_max > sample_rate / 2 + 1e-6 or f_min < 0 or f_min >= f_max:
            raise ConfigError(
                f"frontend: need 0 <= f_min < f_max <= sample_rate/2, got f_min={f_min} "
                f"f_max={f_max} at {sample_rate} Hz"
            )
        if kind in ("logfreq", "chroma") and int(bins_per_octave) <= 0:
            raise ConfigError(f"frontend.bins_per_octave={bins_per_octave}: must be at least 1")
        if kind in ("logfreq", "chroma") and f_min <= 0:
            raise ConfigError(f"frontend.f_min must be above 0 Hz for kind={kind} (e.g. 32.7, C1)")
        if kind == "mfcc" and n_mfcc > n_mels:
            raise ConfigError(f"frontend.n_mfcc={n_mfcc} exceeds n_mels={n_mels}")
        if instance_norm not in ("none", "mean", "meanvar"):
            raise ConfigError(
                f"frontend.instance_norm={instance_norm!r}: choose none, mean, meanvar"
            )
        self.config: dict[str, Any] = dict(
            kind=kind, sample_rate=int(sample_rate), n_fft=int(n_fft), win_length=win_length,
            hop_length=hop_length, n_mels=int(n_mels), f_min=float(f_min), f_max=f_max,
            power=float(power), mel_scale=mel_scale, norm=norm, log=log, top_db=top_db,
            amin=float(amin), eps=float(eps), n_mfcc=int(n_mfcc),
            bins_per_octave=int(bins_per_octave), center=bool(center),
            pad_mode=pad_mode, normalize=bool(normalize), instance_norm=instance_norm,
            active_db=float(active_db),
        )  # fmt: skip
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=int(sample_rate), n_fft=int(n_fft), win_length=win_length,
            hop_length=hop_length, f_min=float(f_min), f_max=f_max, n_mels=int(n_mels),
            power=float(power), center=center, pad_mode=pad_mode, norm=norm, mel_scale=mel_scale,
        )  # fmt: skip
        if kind in ("logfreq", "chroma"):
            fb = log_frequency_filterbank(
                int(sample_rate), int(n_fft), float(f_min), f_max, int(bins_per_octave)
            ).T  # (log bins, freqs)
            if kind == "chroma":  # fold the octaves: (bins_per_octave, log bins) @ fb
                bpo = int(bins_per_octave)
                if fb.shape[0] < bpo:
                    raise ConfigError(
                        f"frontend: kind=chroma needs f_min..f_max to span an octave, got "
                        f"{f_min}..{f_max} Hz"
                    )
                fold = torch.zeros(bpo, fb.shape[0])
                fold[torch.arange(fb.shape[0]) % bpo, torch.arange(fb.shape[0])] = 1.0
                fb = fold @ fb
            self.register_buffer("logfreq", fb.contiguous(), persistent=False)  # (bins, freqs)
        if kind == "mfcc":
            dct = torchaudio.functional.create_dct(int(n_mfcc), int(n_mels), norm="ortho")
            self.register_buffer("dct", dct, persistent=False)  # (n_mels, n_mfcc)
        self.norm = FrequencyNorm(self.n_bins) if normalize else None

    @property
    def n_bins(self) -> int:
        """Number of frequency rows in the output (``n_mels``, ``n_mfcc``, log bins or
        ``bins_per_octave`` pitch classes)."""
        if self.config["kind"] in ("logfreq", "chroma"):
            return int(self.logfreq.shape[0])
        return self.config["n_mfcc"] if self.config["kind"] == "mfcc" else self.config["n_mels"]

    @property
    def sample_rate(self) -> int:
        """Expected input sample rate in Hz."""
        return self.config["sample_rate"]

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for an input of ``n_samples`` samples."""
        hop = self.config["hop_length"]
        if self.config["center"]:
            return 1 + n_samples // hop
        return 1 + (n_samples - self.config["n_fft"]) // hop

    def _log(self, power: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if cfg["log"] == "log":
            return torch.log(power + cfg["eps"])
        db = 10.0 * torch.log10(torch.clamp(power, min=cfg["amin"]))
        if cfg["top_db"] is not None:
            peak = db.amax(dim=(-2, -1), keepdim=True)
            db = torch.maximum(db, peak - float(cfg["top_db"]))
        return db

    def _instance_norm(self, feats: torch.Tensor, power: torch.Tensor) -> torch.Tensor:
        """Per-example, per-bin normalisation over active frames; ``feats (batch, bins, t)``."""
        frame_db = 10.0 * torch.log10(power.amax(dim=1).clamp_min(self.config["amin"]))
        peak = frame_db.amax(dim=-1, keepdim=True)
        w = (frame_db >= peak - self.config["active_db"]).to(feats.dtype)[:, None, :]
        count = w.sum(dim=-1, keepdim=True).clamp_min(1.0)
        mean = (feats * w).sum(dim=-1, keepdim=True) / count
        out = feats - mean
        if self.config["instance_norm"] == "meanvar":
            var = (out.square() * w).sum(dim=-1, keepdim=True) / count
            out = out / var.clamp_min(1e-4).sqrt()
        return out

    def raw(self, wave: torch.Tensor) -> torch.Tensor:
        """Features before the per-frequency normalisation: ``(batch, 1, n_bins, frames)``."""
        x = as_batch(wave).float()
        with torch.autocast(device_type=x.device.type, enabled=False):
            if self.config["kind"] in ("logfreq", "chroma"):  # the mel's STFT, re-binned
                power = torch.matmul(self.logfreq, self.mel.spectrogram(x))
            else:
                power = self.mel(x)  # (batch, n_mels, frames)
            feats = self._log(power)
            if self.config["kind"] == "mfcc":
                feats = torch.einsum("bmt,mc->bct", feats, self.dct)
            if self.config["instance_norm"] != "none":
                feats = self._instance_norm(feats, power)
        return feats.unsqueeze(1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Waveform ``(batch, [1,] samples)`` -> features ``(batch, 1, n_bins, frames)``."""
        feats = self.raw(wave)
        return self.norm(feats) if self.norm is not None else feats

    @torch.no_grad()
    def fit_norm(self, batches) -> None:
        """Fit the per-frequency statistics on training audio (no-op without ``normalize``).

        Args:
            batches: iterable of waveform tensors ``(batch, samples)`` from the training
                folds only (never validation or test audio).
        """
        if self.norm is None:
            return
        self.norm.fit(self.raw(b.to(self.norm.mean.device)) for b in batches)


class FrequencyNorm(nn.Module):
    """Per-frequency standardisation ``(x - mean[f]) / std[f]`` with fitted buffers.

    Args:
        n_bins: number of frequency rows.

    Shapes:
        ``(batch, 1, n_bins, frames)`` -> same shape.
    """

    def __init__(self, n_bins: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_bins))
        self.register_buffer("std", torch.ones(n_bins))

    @torch.no_grad()
    def fit(self, features) -> None:
        """Compute mean and std per bin over all frames of ``features``.

        Args:
            features: iterable of tensors ``(batch, 1, n_bins, frames)``.

        Raises:
            ConfigError: the iterable is empty.
        """
        total, s1, s2 = 0, None, None
        for f in features:
            f = f.double()
            s = f.sum(dim=(0, 1, 3))
            q = (f * f).sum(dim=(0, 1, 3))
            s1 = s if s1 is None else s1 + s
            s2 = q if s2 is None else s2 + q
            total += f.shape[0] * f.shape[1] * f.shape[3]
        if not total:
            raise ConfigError("frequency normalisation: no training audio to fit statistics on")
        mean = s1 / total
        var = (s2 / total - mean * mean).clamp_min(1e-8)
        self.mean.copy_(mean.float())
        self.std.copy_(var.sqrt().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standardise ``x`` ``(batch, 1, n_bins, frames)`` per frequency bin."""
        return (x - self.mean[:, None]) / self.std[:, None]


def build_frontend(sample_rate: int, **kwargs: Any) -> Frontend:
    """Build a :class:`Frontend` from a config group (``frontend:`` in ``conf.yml``).

    Raises:
        ConfigError: an unknown key or an invalid value.
    """
    try:
        return Frontend(sample_rate=sample_rate, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"frontend: {exc}") from None


# ----------------------------------------------------------------------------- length policy


@dataclass(frozen=True)
class LengthPolicy:
    """Fixed-duration policy for variable-length clips.

    Attributes:
        seconds: duration of every training/evaluation example in seconds.
        pad: how short clips are filled: ``"zero"``, ``"repeat"`` (tile the clip) or
            ``"noise"`` (white noise at ``noise_db`` dBFS RMS).
        train_crop: ``"random"`` (random crop of long clips and random placement of short
            ones) or ``"center"``.
        eval_crop: ``"center"`` (one centred window) or ``"sliding"`` (windows every
            ``hop_seconds``; the model's logits are averaged over windows).
        hop_seconds: sliding-window hop in seconds (``None``: ``seconds / 2``).
        noise_db: level of ``pad="noise"`` in dB relative to full scale.

    Raises:
        ConfigError: (on construction) non-positive ``seconds`` or unknown modes.
    """

    seconds: float = 1.0
    pad: str = "zero"
    train_crop: str = "random"
    eval_crop: str = "center"
    hop_seconds: float | None = None
    noise_db: float = -60.0

    def __post_init__(self) -> None:
        if not self.seconds or self.seconds <= 0:
            raise ConfigError(f"data.seconds must be positive, got {self.seconds}")
        if self.pad not in PAD_MODES:
            raise ConfigError(f"data.pad={self.pad!r}: choose from {', '.join(PAD_MODES)}")
        if self.train_crop not in ("random", "center"):
            raise ConfigError(f"data.train_crop={self.train_crop!r}: choose random or center")
        if self.eval_crop not in ("center", "sliding"):
            raise ConfigError(f"data.eval_crop={self.eval_crop!r}: choose center or sliding")
        if self.hop_seconds is not None and self.hop_seconds <= 0:
            raise ConfigError(f"data.hop_seconds must be positive, got {self.hop_seconds}")

    def n_samples(self, sample_rate: int) -> int:
        """Example length in samples at ``sample_rate`` Hz."""
        return max(1, int(round(self.seconds * sample_rate)))

    def hop_samples(self, sample_rate: int) -> int:
        """Sliding-window hop in samples at ``sample_rate`` Hz."""
        hop = self.hop_seconds if self.hop_seconds is not None else self.seconds / 2
        return max(1, int(round(hop * sample_rate)))

    def to_dict(self) -> dict[str, Any]:
        """Plain-value dictionary (for checkpoints and configs)."""
        return asdict(self)


def pad_to(
    clip: np.ndarray, n: int, mode: str = "zero", offset: int | None = None,
    rng: np.random.Generator | None = None, noise_db: float = -60.0,
) -> np.ndarray:  # fmt: skip
    """Pad a short clip to ``n`` samples.

    Args:
        clip: ``(samples,)`` float array with ``samples <= n``.
        n: target length in samples.
        mode: ``"zero"``, ``"repeat"`` (tile from the start) or ``"noise"``.
        offset: where the clip starts for zero/noise padding (``None``: centred).
        rng: random generator for ``"noise"`` (``None``: seeded from the clip length).
        noise_db: RMS level of the noise in dBFS.

    Returns:
        ``(n,)`` float32 array.
    """
    clip = np.asarray(clip, dtype=np.float32)
    m = clip.shape[0]
    if m >= n:
        return np.array(clip[:n], dtype=np.float32)
    if mode == "repeat" and m > 0:
        return np.tile(clip, math.ceil(n / m))[:n].astype(np.float32)
    if offset is None:
        offset = (n - m) // 2
    offset = int(min(max(offset, 0), n - m))
    if mode == "noise":
        rng = rng if rng is not None else np.random.default_rng(m)
        out = (rng.standard_normal(n) * 10 ** (noise_db / 20)).astype(np.float32)
    else:
        out = np.zeros(n, dtype=np.float32)
    out[offset : offset + m] = clip
    return out


def train_view(
    clip: np.ndarray, n: int, policy: LengthPolicy, rng: np.random.Generator
) -> np.ndarray:
    """One training example of ``n`` samples: random (or centre) crop / placement, then pad.

    Args:
        clip: ``(samples,)`` float array.
        n: example length in samples.
        policy: the :class:`LengthPolicy`.
        rng: generator for the crop offset and noise padding.

    Returns:
        ``(n,)`` float32 array.
    """
    m = clip.shape[0]
    rand = policy.train_crop == "random"
    if m > n:
        start = int(rng.integers(0, m - n + 1)) if rand else (m - n) // 2
        return np.array(clip[start : start + n], dtype=np.float32)
    offset = int(rng.integers(0, n - m + 1)) if rand else None
    return pad_to(clip, n, policy.pad, offset=offset, rng=rng, noise_db=policy.noise_db)


def eval_windows(clip: np.ndarray, n: int, policy: LengthPolicy, hop: int) -> np.ndarray:
    """Deterministic evaluation windows of ``n`` samples.

    ``eval_crop="center"`` gives one centred window; ``"sliding"`` gives windows every
    ``hop`` samples covering the whole clip (the last one aligned to the clip's end).
    Clips shorter than ``n`` are padded (centred) into one window.

    Returns:
        ``(windows, n)`` float32 array.
    """
    m = clip.shape[0]
    if m <= n:
        rng = np.random.default_rng(m)
        return pad_to(clip, n, policy.pad, rng=rng, noise_db=policy.noise_db)[None]
    if policy.eval_crop == "center":
        start = (m - n) // 2
        return np.array(clip[start : start + n], dtype=np.float32)[None]
    starts = list(range(0, m - n + 1, hop))
    if starts[-1] != m - n:
        starts.append(m - n)
    return np.stack([np.array(clip[s : s + n], dtype=np.float32) for s in starts])
