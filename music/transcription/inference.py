"""Apply a :class:`~music.transcription.model.Transcriber` to recordings of any length.

The recording is cut into consecutive, non-overlapping windows of ``model.window`` seconds
(the last one zero-padded), as MT3 does; windows are encoded and decoded in batches and the
decoded event streams are stitched across windows through their tie sections
(:class:`music.transcription.tokens.NoteStitcher`). Files are read block by block and
resampled as a stream (``soxr.ResampleStream``), so the audio held in memory does not grow
with the length of the input. The input is peak-normalised first (one extra decoding pass
over the file), as the training windows were. (The ``frames`` decoder keeps every window's
frame logits, 63 floats per 20 ms, about 0.8 MB per minute, before segmenting them.)

Two decoders share the encoder: ``seq2seq`` (the autoregressive event decoder, greedy) and
``frames`` (the frame head: per-frame pitch class and onset probability, segmented into notes
by :func:`frames_to_notes`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from music.transcription.model import Transcriber
from music.transcription.tokens import NoteStitcher, parse
from wb.errors import WbError

METHODS = ("seq2seq", "frames")
#: Peak (full scale 1) at or below which a recording counts as silent (-80 dBFS): it gives no
#: notes rather than being normalised up by 80 dB or more into noise.
SILENT_PEAK = 1e-4
BUILDERS = {"music.transcription.model:Transcriber": Transcriber}


def load_transcriber(path: str | os.PathLike) -> tuple[Transcriber, dict]:
    """Rebuild a transcriber from a model file (:func:`wb.checkpoint.save_model`).

    Raises:
        WbError: unreadable file, a class outside :data:`BUILDERS`, weights that do not fit.
    """
    from wb.checkpoint import load_model

    model, info = load_model(path, BUILDERS)
    return model, info  # type: ignore[return-value]


def frames_to_notes(
    frame_logits: np.ndarray,
    frame_seconds: float,
    min_pitch: int,
    onset_threshold: float = 0.5,
    min_duration: float = 0.06,
    start: float = 0.0,
) -> np.ndarray:
    """Segment frame-head outputs into notes.

    Per frame the pitch is the arg-max class (the last class of the pitch block is "no
    note"), median-filtered over 3 frames. A note starts at a voiced frame that follows an
    unvoiced one, changes pitch, or has an onset probability above ``onset_threshold`` that
    is a local maximum; it ends at the next unvoiced frame or start. Notes shorter than
    ``min_duration`` seconds are dropped. (The usual onset/frame decoding of Onsets and
    Frames, Hawthorne et al. 2018, adapted to one voice.)

    Args:
        frame_logits: ``(frames, n_pitches + 2)`` logits (pitch classes, "no note", onset).
        frame_seconds: frame spacing in seconds.
        min_pitch: MIDI pitch of class 0.
        start: time of frame 0 in seconds.

    Returns:
        ``(n, 3)`` notes: onset_s, offset_s, MIDI pitch.
    """
    from scipy.signal import medfilt

    n_classes = frame_logits.shape[1] - 1
    cls = frame_logits[:, :n_classes].argmax(1)
    if len(cls) >= 3:
        cls = medfilt(cls.astype(np.float64), 3).astype(np.int64)
    onset = 1 / (1 + np.exp(-frame_logits[:, -1]))
    silent = n_classes - 1
    peak = np.zeros(len(onset), dtype=bool)
    if len(onset):
        left = np.r_[-np.inf, onset[:-1]]
        right = np.r_[onset[1:], -np.inf]
        peak = (onset >= onset_threshold) & (onset >= left) & (onset > right)
    notes, current, begin = [], None, 0
    for j, c in enumerate(list(cls) + [silent]):
        new = c != silent and (current is None or c != current or (j < len(peak) and peak[j]))
        if current is not None and (c == silent or new):
            notes.append((start + begin * frame_seconds, start + j * frame_seconds, current))
            current = None
        if new:
            current, begin = int(c), j
    out = [(a, b, p + min_pitch) for a, b, p in notes if b - a >= min_duration]
    return np.array(out, dtype=np.float64).reshape(-1, 3)


def _windows(blocks: Iterator[np.ndarray], samples: int, scale: float) -> Iterator[np.ndarray]:
    """Consecutive windows of ``samples`` from mono float32 blocks (last one zero-padded)."""
    buf = np.zeros(0, dtype=np.float32)
    for block in blocks:
        buf = np.concatenate([buf, block * np.float32(scale)])
        while len(buf) >= samples:
            yield buf[:samples]
            buf = buf[samples:]
    if len(buf):
        yield np.pad(buf, (0, samples - len(buf)))


@torch.no_grad()
def transcribe_blocks(
    model: Transcriber,
    blocks: Iterator[np.ndarray],
    duration: float,
    method: str = "seq2seq",
    batch_windows: int = 8,
    scale: float = 1.0,
    on_window: Callable[[float], None] | None = None,
) -> np.ndarray:
    """Transcribe a mono stream at ``model.sample_rate``.

    Args:
        model: the transcriber (eval mode).
        blocks: float32 ``(samples,)`` blocks in time order.
        duration: the stream's length in seconds (open notes end there).
        method: ``seq2seq`` or ``frames``.
        batch_windows: windows encoded and decoded together.
        scale: gain applied to every sample (peak normalisation).
        on_window: called with the seconds of audio done after each batch (progress).

    Returns:
        ``(n, 3)`` notes: onset_s, offset_s, MIDI pitch.

    Raises:
        WbError: an unknown method.
    """
    if method not in METHODS:
        raise WbError(f"unknown method {method!r}: choose {' or '.join(METHODS)}")
    model.eval()
    stitcher, frame_rows, batch, k = NoteStitcher(monophonic=True), [], [], 0

    def flush() -> None:
        nonlocal k
        x = torch.from_numpy(np.stack(batch))
        memory, frames = model.encode(x)
        if method == "seq2seq":
            for seq in model.generate(memory):
                stitcher.add(parse(seq, model.vocab), k * model.window)
                k += 1
        else:
            frame_rows.append(frames.reshape(-1, frames.shape[-1]).numpy())
            k += len(batch)
        if on_window is not None:
            on_window(min(k * model.window, duration))
        batch.clear()

    for window in _windows(blocks, model.samples, scale):
        batch.append(window)
        if len(batch) == batch_windows:
            flush()
    if batch:
        flush()
    if method == "seq2seq":
        notes = stitcher.finish(duration)
    else:
        logits = (
            np.concatenate(frame_rows) if frame_rows else np.zeros((0, model.vocab.n_pitches + 2))
        )
        notes = frames_to_notes(logits, model.frame_seconds, model.vocab.min_pitch)
    if len(notes):
        notes = notes[notes[:, 0] < duration]
        notes[:, 1] = np.minimum(notes[:, 1], duration)
    return notes


def transcribe_array(
    model: Transcriber, audio: np.ndarray, method: str = "seq2seq", batch_windows: int = 8
) -> np.ndarray:
    """Transcribe mono audio ``(samples,)`` already at ``model.sample_rate`` (peak-normalised
    here); returns ``(n, 3)`` notes (none for a silent input, see :data:`SILENT_PEAK`).

    Raises:
        WbError: an unknown method.
    """
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    peak = float(np.abs(x).max()) if len(x) else 0.0
    if peak <= SILENT_PEAK:
        return np.zeros((0, 3))
    duration = len(x) / model.sample_rate
    return transcribe_blocks(model, iter([x]), duration, method, batch_windows, 1.0 / peak)


def scan(path: str | os.PathLike) -> tuple[float, float]:
    """Decode a whole file once: ``(duration_s, peak)`` of its mono downmix (the peak at the
    file's own rate, full scale 1). Also the check that every block decodes.

    Raises:
        AudioError: unreadable, truncated or empty input.
    """
    from wb import audio as wb_audio

    info, blocks = wb_audio.read_blocks(path)
    peak, count = 0.0, 0
    for block in blocks:
        if block.size:
            peak = max(peak, float(np.abs(block.mean(0)).max()))
            count += block.shape[1]
    return count / info.sample_rate, peak


def _mono_blocks(path: Path, sample_rate: int) -> Iterator[np.ndarray]:
    """Mono float32 blocks of a file, stream-resampled to ``sample_rate``."""
    import soxr

    from wb import audio as wb_audio

    info, gen = wb_audio.read_blocks(path)
    sr = info.sample_rate
    stream = None
    if sr != sample_rate:
        stream = soxr.ResampleStream(sr, sample_rate, 1, dtype="float32", quality="HQ")
    for block in gen:
        mono = block.mean(0).astype(np.float32)
        yield mono if stream is None else stream.resample_chunk(mono)
    if stream is not None:
        yield stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


def transcribe_file(
    model: Transcriber,
    path: str | os.PathLike,
    method: str = "seq2seq",
    batch_windows: int = 8,
    on_window: Callable[[float], None] | None = None,
    scanned: tuple[float, float] | None = None,
) -> tuple[np.ndarray, float]:
    """Transcribe an audio file of any length, streaming: :func:`scan` (one decoding pass,
    skipped when ``scanned`` gives its result), then a second pass that transcribes.

    The peak used for normalisation is measured at the file's own rate (before
    resampling), so it can differ very slightly from :func:`transcribe_array`'s.

    Returns:
        ``(notes (n, 3), duration_s)``; no notes for a silent file (:data:`SILENT_PEAK`).

    Raises:
        AudioError: unreadable or empty input. WbError: an unknown method.
    """
    duration, peak = scanned or scan(path)
    if peak <= SILENT_PEAK:
        return np.zeros((0, 3)), duration
    blocks = _mono_blocks(Path(path), model.sample_rate)
    notes = transcribe_blocks(model, blocks, duration, method, batch_windows, 1.0 / peak, on_window)
    return notes, duration
