"""Baseline singing transcribers: pYIN + note segmentation, and Spotify's basic-pitch.

* :func:`pyin_notes` -- frame-wise f0 from pYIN (Mauch & Dixon, "pYIN: A fundamental frequency
  estimator using probabilistic threshold distributions", ICASSP 2014; ``librosa.pyin``),
  then the rule-based note segmentation of :func:`segment_notes`.
* :func:`basic_pitch_notes` -- basic-pitch (Bittner et al., "A lightweight instrument-agnostic
  model for polyphonic note transcription and multipitch estimation", ICASSP 2022), an
  optional dependency (``pip install basic-pitch``), used as published.

Both return note lists ``(n, 3)``: onset s, offset s, integer MIDI pitch (as float64).
"""

from __future__ import annotations

import os

import numpy as np

from music.transcription.notes import as_notes, empty_notes
from wb.errors import AudioError, DependencyError

#: Rate (Hz) pYIN runs at; other input rates are resampled (libsoxr via wb.audio.resample).
PYIN_SAMPLE_RATE = 16_000
#: pYIN hop (samples at 16 kHz): 10 ms frames.
PYIN_HOP_LENGTH = 160
#: pYIN analysis frame (samples at 16 kHz): 64 ms, four periods of the 65 Hz lowest pitch.
PYIN_FRAME_LENGTH = 1024

# Segmentation defaults, tuned on the SSVD train part only (52 recordings; never the valid
# part): the grid of benchmarks/ssvd_baselines.py --tune (median 3/5/9 frames, split 0.5-1.0
# semitones, stay 3-12 frames, shortest note 0.04-0.15 s), best mean COnP F1 (0.498 on train;
# the surface is flat: the 12 best settings lie within 0.01).
MEDIAN_FRAMES = 5
SPLIT_SEMITONES = 0.8
STAY_FRAMES = 12
MIN_NOTE_SECONDS = 0.15


def pyin_f0(
    audio: np.ndarray,
    sample_rate: int,
    fmin: float = 65.0,
    fmax: float = 1046.5,
    hop_length: int = PYIN_HOP_LENGTH,
    frame_length: int = PYIN_FRAME_LENGTH,
) -> tuple[np.ndarray, np.ndarray]:
    """Frame-wise pitch of a monophonic recording with pYIN (Mauch & Dixon 2014).

    The audio is resampled to :data:`PYIN_SAMPLE_RATE` (16 kHz) when needed and analysed with
    ``librosa.pyin`` (centred frames; its default HMM voicing parameters).

    Args:
        audio: 1-D float array ``(samples,)``, amplitude in [-1, 1].
        sample_rate: its rate in Hz.
        fmin, fmax: pitch search range in Hz (default C2 .. C6).
        hop_length: frame hop in samples at 16 kHz (160 = 10 ms).
        frame_length: analysis frame in samples at 16 kHz.

    Returns:
        ``(midi, voiced)``: float64 ``(frames,)`` MIDI pitch (NaN where pYIN found none) and
        bool ``(frames,)`` pYIN's voicing decision; frame ``i`` is centred at
        ``i * hop_length / 16000`` seconds.

    Raises:
        AudioError: ``audio`` not 1-D, containing NaN/Inf, or a sample rate outside
            1 kHz .. 384 kHz.
    """
    import librosa

    y = np.asarray(audio, dtype=np.float32)
    if y.ndim != 1:
        raise AudioError(f"pyin: expected 1-D audio (samples,), got shape {y.shape}")
    if not np.isfinite(y).all():
        raise AudioError("pyin: audio contains NaN or Inf")
    if y.size == 0:
        return np.zeros(0), np.zeros(0, dtype=bool)
    if sample_rate != PYIN_SAMPLE_RATE:
        import torch

        from wb.audio import resample

        y = resample(torch.from_numpy(y), int(sample_rate), PYIN_SAMPLE_RATE).numpy()
    n_frames = 1 + len(y) // hop_length
    if len(y) < frame_length:
        y = np.pad(y, (0, frame_length - len(y)))
    f0, voiced, _ = librosa.pyin(
        y, fmin=fmin, fmax=fmax, sr=PYIN_SAMPLE_RATE, frame_length=frame_length,
        hop_length=hop_length, center=True,
    )  # fmt: skip
    f0, voiced = f0[:n_frames], voiced[:n_frames]
    with np.errstate(invalid="ignore", divide="ignore"):
        midi = 69.0 + 12.0 * np.log2(f0 / 440.0)
    voiced = voiced & np.isfinite(midi)
    return midi, voiced


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` (end exclusive) of the runs of True in a bool array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def _split_run(m: np.ndarray, split_semitones: float, stay_frames: int) -> list[int]:
    """Start indices of the notes in one voiced run of smoothed MIDI pitches ``m``."""
    starts, seg = [0], 0
    for t in range(1, len(m) - stay_frames + 1):
        ref = np.median(m[seg:t])
        win = m[t : t + stay_frames]
        if (
            abs(m[t] - ref) > split_semitones
            and (np.abs(win - ref) > split_semitones).all()
            and np.ptp(win) <= split_semitones
        ):
            starts.append(t)
            seg = t
    return starts


def segment_notes(
    midi: np.ndarray,
    voiced: np.ndarray,
    hop: float = PYIN_HOP_LENGTH / PYIN_SAMPLE_RATE,
    median_frames: int = MEDIAN_FRAMES,
    split_semitones: float = SPLIT_SEMITONES,
    stay_frames: int = STAY_FRAMES,
    min_duration: float = MIN_NOTE_SECONDS,
) -> np.ndarray:
    """Turn a frame-wise pitch track into notes with a change-point rule.

    1. Voiced runs: maximal stretches of consecutive voiced frames; every unvoiced frame ends a
       note (sung syllables put short unvoiced gaps between notes).
    2. Smoothing: a running median over ``median_frames`` frames inside each run (edges
       repeated), which removes octave blips and the first frames of a glide.
    3. Change points: inside a run, a new note starts at frame ``t`` when the smoothed pitch at
       ``t`` and at each of the next ``stay_frames - 1`` frames lies more than
       ``split_semitones`` from the median pitch of the current note so far, and those
       ``stay_frames`` frames agree with each other within ``split_semitones`` (the pitch moved
       and stays there: vibrato and drift do not split, a step to the next note does).
    4. Each note's pitch is the median of its smoothed frames rounded to an integer MIDI note;
       adjacent notes in one run that round to the same pitch are merged; notes shorter than
       ``min_duration`` seconds are dropped.

    Frame ``i`` spans ``[i * hop, (i + 1) * hop)`` seconds: a note over frames ``a .. b - 1``
    is ``(a * hop, b * hop)``.

    Args:
        midi: float ``(frames,)`` MIDI pitch per frame (ignored where not voiced).
        voiced: bool ``(frames,)`` voicing per frame.
        hop: frame hop in seconds.
        median_frames: median filter length in frames (1 = none; even values are made odd).
        split_semitones: pitch change that starts a new note, in semitones.
        stay_frames: frames the new pitch must hold (>= 1).
        min_duration: shortest note kept, in seconds.

    Returns:
        note list ``(n, 3)`` with integer pitches, sorted by onset, monophonic.
    """
    from scipy.ndimage import median_filter

    midi = np.asarray(midi, dtype=np.float64)
    voiced = np.asarray(voiced, dtype=bool) & np.isfinite(midi)
    size = max(1, int(median_frames) | 1)
    stay = max(1, int(stay_frames))
    notes = []
    for a, b in _runs(voiced):
        m = median_filter(midi[a:b], size=size, mode="nearest")
        bounds = [*_split_run(m, split_semitones, stay), b - a]
        run_notes: list[list[float]] = []
        for s, e in zip(bounds[:-1], bounds[1:], strict=True):
            pitch = float(np.rint(np.median(m[s:e])))
            if run_notes and run_notes[-1][2] == pitch:
                run_notes[-1][1] = (a + e) * hop
            else:
                run_notes.append([(a + s) * hop, (a + e) * hop, pitch])
        notes.extend(n for n in run_notes if n[1] - n[0] >= min_duration - 1e-9)
    return as_notes(notes) if notes else empty_notes()


def pyin_notes(
    audio: np.ndarray,
    sample_rate: int,
    fmin: float = 65.0,
    fmax: float = 1046.5,
    hop_length: int = PYIN_HOP_LENGTH,
    frame_length: int = PYIN_FRAME_LENGTH,
    median_frames: int = MEDIAN_FRAMES,
    split_semitones: float = SPLIT_SEMITONES,
    stay_frames: int = STAY_FRAMES,
    min_duration: float = MIN_NOTE_SECONDS,
) -> np.ndarray:
    """Transcribe a monophonic singing recording: :func:`pyin_f0` then :func:`segment_notes`.

    The baseline of the voice-to-MIDI comparison: pYIN (Mauch & Dixon, ICASSP 2014) at 16 kHz
    with a 10 ms hop, followed by median smoothing and a change-point note segmentation. The
    segmentation defaults were tuned on the SSVD train part only.

    Args:
        audio: 1-D float array ``(samples,)``.
        sample_rate: its rate in Hz.
        fmin, fmax, hop_length, frame_length: see :func:`pyin_f0`.
        median_frames, split_semitones, stay_frames, min_duration: see :func:`segment_notes`.

    Returns:
        note list ``(n, 3)``: onset s, offset s, integer MIDI pitch; empty for silence.

    Raises:
        AudioError: see :func:`pyin_f0`.
    """
    midi, voiced = pyin_f0(audio, sample_rate, fmin, fmax, hop_length, frame_length)
    return segment_notes(
        midi, voiced, hop_length / PYIN_SAMPLE_RATE, median_frames, split_semitones,
        stay_frames, min_duration,
    )  # fmt: skip


def basic_pitch_available() -> bool:
    """Whether the optional ``basic_pitch`` package (and its inference module) imports."""
    try:
        import basic_pitch.inference  # noqa: F401
    except Exception:  # ImportError, or a broken back end raising at import time
        return False
    return True


def basic_pitch_notes(path: str | os.PathLike, **predict_kwargs) -> np.ndarray:
    """Transcribe an audio file with basic-pitch (Bittner et al., ICASSP 2022), as published.

    Calls ``basic_pitch.inference.predict(path, ICASSP_2022_MODEL_PATH, **predict_kwargs)``
    (its defaults: onset threshold 0.5, frame threshold 0.3, minimum note length 127.7 ms,
    the melodia trick) and keeps its note events' onset, offset and MIDI pitch. The output may
    be polyphonic; it is not cleaned.

    Args:
        path: audio file basic-pitch can read (it loads and resamples to 22,050 Hz itself).
        predict_kwargs: passed on to ``predict``.

    Returns:
        note list ``(n, 3)``: onset s, offset s, integer MIDI pitch.

    Raises:
        DependencyError: basic-pitch is not installed (or fails to import).
    """
    if not basic_pitch_available():
        raise DependencyError(
            "basic-pitch is not installed; pip install 'basic-pitch' (with onnxruntime or "
            "tensorflow) to use this baseline"
        )
    from basic_pitch import ICASSP_2022_MODEL_PATH
    from basic_pitch.inference import predict

    _, _, events = predict(str(path), ICASSP_2022_MODEL_PATH, **predict_kwargs)
    rows = [(float(e[0]), float(e[1]), float(e[2])) for e in events if e[1] > e[0]]
    return as_notes(rows, str(path)) if rows else empty_notes()
