"""Training and validation windows for the voice-to-MIDI transcriber.

A *recording* is an audio file with a note list beside it (``<id>.txt``: onset_s, offset_s,
MIDI pitch per line, the SSVD format; :func:`music.transcription.notes.read_notes`). Both
the synthetic sung lines (:mod:`music.transcription.voices`) and the real SSVD recordings
use it, so one dataset reads both. Audio is decoded once, resampled to the model's rate,
downmixed to mono and peak-normalised (as :func:`music.transcription.inference.transcribe`
does), and held in memory.

Training draws random windows (with a random gain and, sometimes, added noise) from
weighted groups of recordings; evaluation uses consecutive windows.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from music.transcription.tokens import BOS, PAD, Vocabulary, encode
from wb.errors import WbError
from wb.progress import progress


@dataclass
class Recording:
    """One decoded recording: ``audio`` ``(samples,)`` float32 at the model rate, peak 1,
    and its ``(n, 3)`` notes."""

    name: str
    audio: np.ndarray
    notes: np.ndarray


def find_pairs(
    folder: str | os.PathLike, ids: Sequence[str] | None = None
) -> list[tuple[str, Path, Path]]:
    """``(id, audio, notes)`` of every ``<id>.{flac,wav}`` with an ``<id>.txt`` in ``folder``.

    Args:
        folder: a folder of recordings.
        ids: keep only these ids (each must exist).

    Raises:
        WbError: missing folder, no pair in it, or a requested id without a pair.
    """
    root = Path(folder)
    if not root.is_dir():
        raise WbError(f"{root}: no such folder of recordings")
    pairs = {}
    for audio in sorted(root.iterdir()):
        if audio.suffix.lower() in (".flac", ".wav") and audio.with_suffix(".txt").is_file():
            pairs[audio.stem] = (audio.stem, audio, audio.with_suffix(".txt"))
    if ids is not None:
        missing = [i for i in ids if i not in pairs]
        if missing:
            raise WbError(f"{root}: no audio + .txt pair for {', '.join(missing[:5])}")
        return [pairs[i] for i in ids]
    if not pairs:
        raise WbError(f"{root}: no <id>.flac/.wav with an <id>.txt beside it")
    return list(pairs.values())


def load_recordings(
    pairs: Sequence[tuple[str, Path, Path]], sample_rate: int, desc: str = "loading"
) -> list[Recording]:
    """Decode, resample to ``sample_rate`` Hz, downmix and peak-normalise recordings.

    Raises:
        AudioError: an unreadable audio file. WbError: a malformed note list.
    """
    from music.transcription.notes import read_notes
    from wb import audio as wb_audio

    out = []
    for name, audio_path, notes_path in progress(pairs, desc=desc, unit="file"):
        x, _ = wb_audio.load(audio_path, sample_rate=sample_rate, channels=1)
        x = x[0].numpy().astype(np.float32)
        x /= max(float(np.abs(x).max()), 1e-6)
        out.append(Recording(name, x, read_notes(notes_path)))
    return out


def frame_targets(
    notes: np.ndarray, start: float, frames: int, frame_seconds: float, vocab: Vocabulary
) -> tuple[np.ndarray, np.ndarray]:
    """Frame-head targets of a window.

    Args:
        notes: ``(n, 3)`` notes of the recording (seconds, MIDI).
        start: window start in seconds.
        frames: encoder frames per window; frame_seconds: their spacing.
        vocab: gives the pitch range (class ``n_pitches`` is "no note").

    Returns:
        ``(pitch_class, onset)``: int64 ``(frames,)`` and float32 ``(frames,)``; a frame's
        class is the pitch sounding at its centre (the latest onset wins), onset is 1 at the
        frame nearest to each onset.
    """
    centres = start + (np.arange(frames) + 0.5) * frame_seconds
    pitch = np.full(frames, vocab.n_pitches, dtype=np.int64)
    onset = np.zeros(frames, dtype=np.float32)
    for on, off, p in notes:
        q = int(round(p))
        if off <= start or on >= start + frames * frame_seconds:
            continue
        if vocab.min_pitch <= q <= vocab.max_pitch:
            pitch[(centres >= on) & (centres < off)] = q - vocab.min_pitch
        j = int(np.floor((on - start) / frame_seconds))
        if 0 <= j < frames:
            onset[j] = 1.0
    return pitch, onset


class NoteWindows(Dataset):
    """Windows of recordings with their token sequences and frame targets.

    Items are dicts: ``audio`` float32 ``(samples,)``, ``tokens`` int64 ``(length,)``
    (ending with ``EOS``), ``pitch`` int64 ``(frames,)``, ``onset`` float32 ``(frames,)``.

    Args:
        groups: lists of recordings; in ``train`` mode a window's group is drawn with
            probability ``weights[g]``, its recording in proportion to duration.
        weights: one per group (normalised; default equal).
        vocab: the token vocabulary (its ``window`` is the window length in seconds).
        sample_rate: Hz of the recordings.
        frames: encoder frames per window; frame_seconds: their spacing in seconds.
        mode: ``train`` (random windows, ``length`` per epoch, augmented) or ``eval``
            (consecutive windows of every recording, at most ``max_windows`` per recording).
        length: training windows per epoch.
        gain_db: random gain range in dB (train).
        noise_probability: chance of added white/pink noise at ``noise_snr_db`` (train).
        shift_probability: chance a training window is *speed-perturbed* (train): played
            ``2 ** (s / 12)`` times faster, ``s`` uniform in ``±shift_semitones``, so pitch
            rises by ``s`` semitones and time shrinks by the same factor, as resampling does
            (the speed perturbation of Ko et al., Interspeech 2015). The note list follows
            exactly: times divided by the factor, pitches plus ``s`` (then rounded for the
            targets, so a fractional ``s`` also varies the sung intonation).
        shift_semitones: the largest shift in semitones.
        seed: base seed; a training item depends on ``(seed, epoch, index)`` only (the
            indices may be ``(index, epoch)`` pairs, as :class:`wb.training.sampler.EpochSampler`
            yields).

    Raises:
        WbError: no recordings, or weights that do not match the groups.
    """

    def __init__(
        self,
        groups: Sequence[Sequence[Recording]],
        vocab: Vocabulary,
        sample_rate: int,
        frames: int,
        frame_seconds: float,
        mode: str = "train",
        weights: Sequence[float] | None = None,
        length: int = 1000,
        gain_db: tuple[float, float] = (-20.0, 0.0),
        noise_probability: float = 0.3,
        noise_snr_db: tuple[float, float] = (10.0, 40.0),
        max_windows: int | None = None,
        seed: int = 0,
        shift_probability: float = 0.0,
        shift_semitones: float = 2.0,
    ) -> None:
        self.groups = [list(g) for g in groups if len(g)]
        if not self.groups:
            raise WbError("no recordings to train or evaluate on")
        w = np.ones(len(groups)) if weights is None else np.asarray(weights, dtype=np.float64)
        if len(w) != len(groups) or (w < 0).any() or w.sum() <= 0:
            raise WbError(f"data weights {list(w)} do not fit {len(groups)} groups")
        self.weights = np.array([x for x, g in zip(w, groups, strict=True) if len(g)])
        self.weights /= self.weights.sum()
        self.vocab, self.sample_rate = vocab, int(sample_rate)
        self.frames, self.frame_seconds = int(frames), float(frame_seconds)
        self.samples = int(round(vocab.window * sample_rate))
        self.mode, self.length, self.seed, self.epoch = mode, int(length), int(seed), 0
        # epoch of plain integer indices; EpochSampler passes (index, epoch) pairs instead
        self.gain_db, self.noise_probability = tuple(gain_db), float(noise_probability)
        self.noise_snr_db = tuple(noise_snr_db)
        self.shift_probability = float(shift_probability)
        self.shift_semitones = float(shift_semitones)
        self.index: list[tuple[int, int, float]] = []
        if mode == "eval":
            for g, group in enumerate(self.groups):
                for r, rec in enumerate(group):
                    n = max(1, int(np.ceil(len(rec.audio) / self.samples)))
                    for k in range(n if max_windows is None else min(n, max_windows)):
                        self.index.append((g, r, k * vocab.window))
        elif mode != "train":
            raise WbError(f"mode must be train or eval, not {mode!r}")

    def __len__(self) -> int:
        return self.length if self.mode == "train" else len(self.index)

    def _crop(self, rec: Recording, start: float, samples: int | None = None) -> np.ndarray:
        samples = self.samples if samples is None else samples
        s = int(round(start * self.sample_rate))
        out = np.zeros(samples, dtype=np.float32)
        lo, hi = max(s, 0), min(s + samples, len(rec.audio))
        if hi > lo:
            out[lo - s : hi - s] = rec.audio[lo:hi]
        return out

    def _shifted(
        self, rec: Recording, start: float, semitones: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """The window at ``start`` played ``2 ** (semitones / 12)`` times faster: float32
        ``(samples,)`` audio and the recording's notes in the window's time (window start 0)."""
        import soxr

        factor = 2.0 ** (semitones / 12)
        source = int(np.ceil(self.samples * factor)) + 16  # a few samples for the filter edge
        x = soxr.resample(self._crop(rec, start, source), self.sample_rate * factor,
                          self.sample_rate, quality="HQ")  # fmt: skip
        x = np.pad(x, (0, max(0, self.samples - len(x))))[: self.samples].astype(np.float32)
        notes = rec.notes.astype(np.float64).copy()
        notes[:, :2] = (notes[:, :2] - start) / factor
        notes[:, 2] += semitones
        return x, notes

    def __getitem__(self, i: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch = self.epoch
        if isinstance(i, tuple):  # (index, epoch) from wb.training.sampler.EpochSampler
            i, epoch = i
        if self.mode == "eval":
            g, r, start = self.index[i]
            rec = self.groups[g][r]
            x, notes = self._crop(rec, start), rec.notes
        else:
            rng = np.random.default_rng([self.seed, int(epoch), int(i)])
            g = int(rng.choice(len(self.groups), p=self.weights))
            lengths = np.array([len(x.audio) for x in self.groups[g]], dtype=np.float64)
            rec = self.groups[g][int(rng.choice(len(lengths), p=lengths / lengths.sum()))]
            duration = len(rec.audio) / self.sample_rate
            if rng.random() < 0.1:  # a recording's last window, mostly padding (as inference)
                start = float(rng.uniform(duration - self.vocab.window, max(duration - 0.5, 0)))
            else:
                start = float(rng.uniform(-0.5, max(duration - self.vocab.window + 0.5, -0.4)))
            start = round(start / self.vocab.step) * self.vocab.step
            if self.shift_probability and rng.random() < self.shift_probability:
                shift = float(rng.uniform(-self.shift_semitones, self.shift_semitones))
                x, notes = self._shifted(rec, start, shift)
                start = 0.0
            else:
                x, notes = self._crop(rec, start), rec.notes
            x = x * np.float32(10 ** (rng.uniform(*self.gain_db) / 20))
            if rng.random() < self.noise_probability:
                x = x + _noise(rng, x, self.noise_snr_db)
        tokens = encode(notes, start, self.vocab)
        pitch, onset = frame_targets(notes, start, self.frames, self.frame_seconds, self.vocab)
        return {
            "audio": torch.from_numpy(x),
            "tokens": torch.tensor(tokens, dtype=torch.long),
            "pitch": torch.from_numpy(pitch),
            "onset": torch.from_numpy(onset),
        }


def _noise(rng: np.random.Generator, x: np.ndarray, snr_db: tuple[float, float]) -> np.ndarray:
    """White or pink noise at a random SNR (dB) relative to ``x``'s power."""
    n = rng.standard_normal(len(x))
    if rng.random() < 0.5:  # pink: 1/f power via spectral shaping
        spec = np.fft.rfft(n)
        spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1))
        n = np.fft.irfft(spec, len(x))
    power = max(float(np.mean(x**2)), 1e-8)
    n *= np.sqrt(power / max(float(np.mean(n**2)), 1e-12) / 10 ** (rng.uniform(*snr_db) / 10))
    return n.astype(np.float32)


def collate(
    items: Sequence[Mapping[str, torch.Tensor]], max_tokens: int
) -> dict[str, torch.Tensor]:
    """Batch items: ``audio`` ``(batch, samples)``; ``tokens_in`` / ``tokens_out``
    ``(batch, length)`` (``BOS`` + target shifted right / target, ``PAD``-filled, cut to
    ``max_tokens``); ``pitch``, ``onset`` ``(batch, frames)``."""
    length = min(max(len(it["tokens"]) for it in items), max_tokens)
    out = torch.full((len(items), length), PAD, dtype=torch.long)
    for b, it in enumerate(items):
        t = it["tokens"][:length]
        out[b, : len(t)] = t
    tokens_in = torch.cat([torch.full((len(items), 1), BOS, dtype=torch.long), out[:, :-1]], 1)
    return {
        "audio": torch.stack([it["audio"] for it in items]),
        "tokens_in": tokens_in,
        "tokens_out": out,
        "pitch": torch.stack([it["pitch"] for it in items]),
        "onset": torch.stack([it["onset"] for it in items]),
    }
