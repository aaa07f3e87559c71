"""Apply a :class:`~music.transcription.model.Transcriber` to recordings of any length.

The recording is cut into consecutive, non-overlapping windows of ``model.window`` seconds
(the last one zero-padded), as MT3 does; windows are encoded and decoded in batches and the
decoded event streams are stitched across windows through their tie sections
(:class:`music.transcription.tokens.NoteStitcher`). Files are read block by block and
resampled as a stream (``soxr.ResampleStream``), so the audio held in memory does not grow
with the length of the input. The input is peak-normalised first (one extra decoding pass
over the file), as the training windows were. (The ``frames`` decoder keeps every window's
frame logits, 63 floats per 20 ms, about 0.8 MB per minute, before segmenting them.)

Two decoders share the encoder: ``seq2seq`` (the autoregressive event decoder, greedy, or
beam search with ``beam > 1``: :meth:`~music.transcription.model.Transcriber.beam_search`) and
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
    min_duration: float = 0.15,
    start: float = 0.0,
    voicing_threshold: float = 0.7,
    max_gap: int = 0,
    median_frames: int = 3,
    stable_frames: int = 12,
    skip_frames: int = 2,
) -> np.ndarray:
    """Segment frame-head outputs into notes (one voice).

    1. *Voicing*: a frame is voiced when its "no note" probability (softmax over the pitch
       block) is below ``voicing_threshold``; unvoiced gaps of at most ``max_gap`` frames
       between voiced frames can be filled. Each voiced run is cut into notes.
    2. *Boundaries* inside a run: an onset probability that is a local maximum at or above
       ``onset_threshold``, or a change of the frame pitch (arg-max, median-filtered over
       ``median_frames``) that holds for ``stable_frames`` frames (or to the end of the run).
       A pitch change also needs the notes before and after it to last ``min_duration``: a
       scoop into a note, a glide, vibrato that crosses a semitone briefly or a fall-off at
       the release stays with the note; a sung legato step does not.
    3. *Pitch* of a note: the arg-max of the pitch probabilities summed over its frames,
       leaving out the first ``skip_frames`` (the attack, where singers scoop).
    4. Neighbouring notes of one pitch that no onset separates are joined; notes shorter
       than ``min_duration`` seconds are dropped.

    This is the onset/frame decoding of Onsets and Frames (Hawthorne et al., ISMIR 2018) for
    one voice, with the pitch-stability rule of note trackers such as Tony (Mauch et al.,
    2015). The defaults were chosen for the shipped model on the 10 SSVD recordings held out
    of its training (``data.ssvd_dev: 10``) and the synthetic validation lines, never on SSVD
    validation: ``python benchmarks/frame_decoding.py --ssvd-dev 10``.

    Args:
        frame_logits: ``(frames, n_pitches + 2)`` logits (pitch classes, "no note", onset).
        frame_seconds: frame spacing in seconds.
        min_pitch: MIDI pitch of class 0.
        onset_threshold: onset probability a peak must reach to start a note.
        min_duration: shortest note in seconds (also the shortest note a boundary may leave).
        start: time of frame 0 in seconds.
        voicing_threshold: "no note" probability under which a frame is voiced.
        max_gap: longest unvoiced gap filled inside a note, in frames (0: none).
        median_frames: median filter over the frame pitch (rounded up to an odd size).
        stable_frames: frames a new pitch must hold to start a note.
        skip_frames: attack frames left out of a note's pitch.

    Returns:
        ``(n, 3)`` notes: onset_s, offset_s, MIDI pitch.
    """
    from scipy.signal import medfilt

    logits = np.asarray(frame_logits, dtype=np.float64)
    z = logits[:, :-1] - logits[:, :-1].max(1, keepdims=True) if len(logits) else logits[:, :-1]
    prob = np.exp(z)
    prob /= np.maximum(prob.sum(1, keepdims=True), 1e-30)
    voiced = prob[:, -1] < voicing_threshold
    edges = np.flatnonzero(np.diff(np.r_[0, voiced.astype(np.int8), 0]))
    for lo, hi in zip(edges[1:-1:2], edges[2::2], strict=True):  # the unvoiced gaps
        if hi - lo <= max_gap:
            voiced[lo:hi] = True
    pitch_prob = prob[:, :-1]
    cls = pitch_prob.argmax(1) if len(prob) else np.zeros(0, dtype=np.int64)
    k = int(median_frames) | 1
    if k > 1 and len(cls) >= k:
        cls = medfilt(cls.astype(np.float64), k).astype(np.int64)
    onset = 1 / (1 + np.exp(-logits[:, -1]))
    left = np.r_[-np.inf, onset[:-1]]
    right = np.r_[onset[1:], -np.inf]
    peak = (onset >= onset_threshold) & (onset >= left) & (onset > right)
    shortest = max(2, int(np.ceil(min_duration / frame_seconds - 1e-9)))
    edges = np.flatnonzero(np.diff(np.r_[0, voiced.astype(np.int8), 0]))
    segments: list[list[float]] = []
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        bounds, current = [int(a)], cls[a]
        for t in range(a + 1, b):
            since = t - bounds[-1]
            if peak[t] and since >= 2:  # (min_duration here too loses more than it saves)
                bounds.append(t)
                current = cls[t]
            elif cls[t] != current and np.all(cls[t : min(t + stable_frames, b)] == cls[t]):
                if since >= shortest and b - t >= shortest:
                    bounds.append(t)
                current = cls[t]
        bounds.append(int(b))
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=False):
            body = pitch_prob[min(lo + skip_frames, hi - 1) : hi]
            p = int(body.sum(0).argmax()) + min_pitch
            if segments and segments[-1][1] == lo and segments[-1][2] == p and not peak[lo]:
                segments[-1][1] = hi
            else:
                segments.append([lo, hi, p])
    out = [
        (start + lo * frame_seconds, start + hi * frame_seconds, p)
        for lo, hi, p in segments
        if (hi - lo) * frame_seconds >= min_duration - 1e-9
    ]
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
    frame_decoder: Callable[[np.ndarray], np.ndarray] | None = None,
    beam: int = 1,
    length_penalty: float = 0.0,
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
        frame_decoder: ``frames`` only: turns the whole stream's ``(frames, n_pitches + 2)``
            frame logits into notes (default :func:`frames_to_notes` with its defaults).
        beam: ``seq2seq`` only: 1 decodes greedily, more runs a beam search with that many
            prefixes per window; length_penalty: its GNMT exponent (>= 0).

    Returns:
        ``(n, 3)`` notes: onset_s, offset_s, MIDI pitch.

    Raises:
        WbError: an unknown method, ``beam < 1``, ``beam > 1`` with ``frames``, or a
            negative ``length_penalty``.
    """
    if method not in METHODS:
        raise WbError(f"unknown method {method!r}: choose {' or '.join(METHODS)}")
    if int(beam) < 1 or (int(beam) > 1 and method != "seq2seq") or length_penalty < 0:
        raise WbError(
            f"beam {beam}, length penalty {length_penalty}: need beam >= 1 (above 1 only "
            "with the seq2seq decoder) and length penalty >= 0"
        )
    model.eval()
    stitcher, frame_rows, batch, k = NoteStitcher(monophonic=True), [], [], 0

    def flush() -> None:
        nonlocal k
        x = torch.from_numpy(np.stack(batch))
        memory, frames = model.encode(x)
        if method == "seq2seq":
            seqs = (
                model.generate(memory) if beam == 1
                else model.beam_search(memory, int(beam), length_penalty=length_penalty)
            )  # fmt: skip
            for seq in seqs:
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
        if frame_decoder is None:
            notes = frames_to_notes(logits, model.frame_seconds, model.vocab.min_pitch)
        else:
            notes = frame_decoder(logits)
    return clip_notes(notes, duration)


def clip_notes(notes: np.ndarray, duration: float) -> np.ndarray:
    """Notes ``(n, 3)`` that start before ``duration`` seconds, their offsets cut there (the
    zero padding of the last window holds no notes)."""
    if len(notes):
        notes = notes[notes[:, 0] < duration]
        notes[:, 1] = np.minimum(notes[:, 1], duration)
    return notes


def transcribe_array(
    model: Transcriber,
    audio: np.ndarray,
    method: str = "seq2seq",
    batch_windows: int = 8,
    frame_decoder: Callable[[np.ndarray], np.ndarray] | None = None,
    beam: int = 1,
    length_penalty: float = 0.0,
) -> np.ndarray:
    """Transcribe mono audio ``(samples,)`` already at ``model.sample_rate`` (peak-normalised
    here); returns ``(n, 3)`` notes (none for a silent input, see :data:`SILENT_PEAK`).
    ``frame_decoder``, ``beam`` and ``length_penalty`` as in :func:`transcribe_blocks`.

    Raises:
        WbError: as :func:`transcribe_blocks`.
    """
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    peak = float(np.abs(x).max()) if len(x) else 0.0
    if peak <= SILENT_PEAK:
        return np.zeros((0, 3))
    duration = len(x) / model.sample_rate
    return transcribe_blocks(
        model, iter([x]), duration, method, batch_windows, 1.0 / peak,
        frame_decoder=frame_decoder, beam=beam, length_penalty=length_penalty,
    )  # fmt: skip


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
    beam: int = 1,
    length_penalty: float = 0.0,
) -> tuple[np.ndarray, float]:
    """Transcribe an audio file of any length, streaming: :func:`scan` (one decoding pass,
    skipped when ``scanned`` gives its result), then a second pass that transcribes.

    The peak used for normalisation is measured at the file's own rate (before
    resampling), so it can differ very slightly from :func:`transcribe_array`'s. ``beam``
    and ``length_penalty`` as in :func:`transcribe_blocks`.

    Returns:
        ``(notes (n, 3), duration_s)``; no notes for a silent file (:data:`SILENT_PEAK`).

    Raises:
        AudioError: unreadable or empty input. WbError: as :func:`transcribe_blocks`.
    """
    duration, peak = scanned or scan(path)
    if peak <= SILENT_PEAK:
        return np.zeros((0, 3)), duration
    blocks = _mono_blocks(Path(path), model.sample_rate)
    notes = transcribe_blocks(
        model, blocks, duration, method, batch_windows, 1.0 / peak, on_window,
        beam=beam, length_penalty=length_penalty,
    )  # fmt: skip
    return notes, duration
