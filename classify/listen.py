"""Live classification of a stream: the microphone (sounddevice / PortAudio) or a file played
through the same path (``wb classify listen``).

The stream is resampled to the model's rate as it arrives (``soxr.ResampleStream``) and kept
in a ring buffer as long as the model's input (``meta["length"]``, e.g. 1 s for FSDD), which
starts as silence. Every ``hop`` seconds (0.5 s by default) the last window is classified;
each result is a :class:`Frame` with the window's end time, the class probabilities and the
level of the last hop. A file is played at real-time speed (sleeping between hops, as a
microphone would deliver it), or as fast as the model runs with ``fast=True``; when the file
ends, the last partial hop is classified too, so a clip shorter than one hop still gets a
prediction. The summary of a session is the class with the highest mean probability over its
windows.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wb.errors import WbError


@dataclass(frozen=True)
class Frame:
    """The classification of one window.

    Attributes:
        time: end of the window in seconds since the stream started.
        probabilities: softmax over the classes, ``(n_classes,)``.
        level_db: RMS level of the last hop in dBFS (-120 for digital silence).
    """

    time: float
    probabilities: np.ndarray
    level_db: float


class SlidingClassifier:
    """Classify the last ``window`` samples every ``hop`` samples of a mono stream.

    Args:
        model: a classifier from :func:`classify.predict.load_classifier`, mapping
            ``(batch, samples)`` at ``sample_rate`` to logits ``(batch, n_classes)``.
        sample_rate: the model's rate in Hz.
        window_seconds: the model's input length in seconds.
        hop_seconds: seconds between two classifications.
        device: torch device of the model.

    Raises:
        WbError: ``hop_seconds`` not a positive, finite number.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        sample_rate: int,
        window_seconds: float,
        hop_seconds: float = 0.5,
        device: str | torch.device = "cpu",
    ) -> None:
        if not 0 < hop_seconds < float("inf"):
            raise WbError(f"--hop must be a positive, finite number of seconds (got {hop_seconds})")
        self.model, self.device = model, torch.device(device)
        self.sample_rate = int(sample_rate)
        self.window = max(1, round(window_seconds * sample_rate))
        self.hop = max(1, round(hop_seconds * sample_rate))
        self.ring = np.zeros(self.window, np.float32)
        self.since = 0  # samples since the last classification
        self.total = 0

    @torch.no_grad()
    def _classify(self) -> Frame:
        x = torch.from_numpy(self.ring.copy())[None].to(self.device)
        probs = torch.softmax(self.model(x).float()[0], dim=-1).cpu().numpy()
        last = self.ring[-min(self.since, self.window) :] if self.since else self.ring[-1:]
        rms = float(np.sqrt(np.mean(np.square(last, dtype=np.float64))))
        level = 20 * math.log10(rms) if rms > 1e-6 else -120.0
        self.since = 0
        return Frame(self.total / self.sample_rate, probs, level)

    def push(self, samples: np.ndarray) -> list[Frame]:
        """Append mono samples ``(samples,)`` at the model's rate; returns the frames of
        every hop completed by them."""
        frames = []
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        while len(samples):
            take = min(len(samples), self.hop - self.since)
            chunk, samples = samples[:take], samples[take:]
            if take >= self.window:
                self.ring[:] = chunk[-self.window :]
            else:
                self.ring = np.roll(self.ring, -take)
                self.ring[-take:] = chunk
            self.since += take
            self.total += take
            if self.since == self.hop:
                frames.append(self._classify())
        return frames

    def finish(self) -> list[Frame]:
        """The frame of the last partial hop (none when the stream ended on a hop, or was
        empty)."""
        return [self._classify()] if self.since else []


def _resampled(blocks: Iterator[np.ndarray], orig_sr: int, new_sr: int) -> Iterator[np.ndarray]:
    """Mono blocks ``(samples,)`` at ``orig_sr`` resampled to ``new_sr`` as a stream."""
    if orig_sr == new_sr:
        yield from blocks
        return
    import soxr

    stream = soxr.ResampleStream(orig_sr, new_sr, 1, dtype="float32", quality="HQ")
    for block in blocks:
        yield stream.resample_chunk(np.ascontiguousarray(block, dtype=np.float32))
    yield stream.resample_chunk(np.zeros(0, np.float32), last=True)


def file_blocks(path: str | os.PathLike, block_seconds: float) -> tuple[int, Iterator[np.ndarray]]:
    """``(sample rate, mono blocks)`` of an audio file, read block by block.

    Raises:
        AudioError: unreadable file.
    """
    from wb import audio

    hdr = audio.info(path)
    _, blocks = audio.read_blocks(path, max(1, int(block_seconds * hdr.sample_rate)))

    def mono() -> Iterator[np.ndarray]:
        try:
            for b in blocks:
                b = np.asarray(b, dtype=np.float32)
                yield b.mean(axis=0) if b.ndim == 2 else b
        finally:
            close = getattr(blocks, "close", None)
            if close:
                close()

    return hdr.sample_rate, mono()


def microphone_blocks(
    block_seconds: float, device: str | int | None = None
) -> tuple[int, Iterator[np.ndarray]]:
    """``(sample rate, mono blocks)`` from an audio input device (sounddevice / PortAudio),
    at the device's default rate; the generator closes the stream when it is closed.

    Raises:
        WbError: PortAudio is missing, there is no input device, or it cannot be opened.
    """
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:
        raise WbError(
            f"no audio input: PortAudio is not available ({exc}); install libportaudio2, "
            "or classify a file with --input FILE"
        ) from None
    try:
        info = sd.query_devices(device, kind="input")
    except Exception as exc:  # noqa: BLE001 - PortAudio's errors are plain exceptions
        msg = " ".join(str(exc).split())
        raise WbError(f"no audio input device ({msg}); classify a file with --input FILE") from None
    sr = int(info["default_samplerate"])
    import queue

    q: queue.Queue = queue.Queue()

    def callback(indata, frames, t, status) -> None:  # PortAudio's thread
        q.put(indata[:, 0].copy())

    try:
        blocksize = max(1, int(block_seconds * sr))
        stream = sd.InputStream(samplerate=sr, channels=1, dtype="float32", device=device,
                                blocksize=blocksize, callback=callback)  # fmt: skip
        stream.start()
    except Exception as exc:  # noqa: BLE001
        msg = " ".join(str(exc).split())
        raise WbError(
            f"cannot open the audio input ({msg}); classify a file with --input FILE"
        ) from None

    def gen() -> Iterator[np.ndarray]:
        try:
            while True:
                yield q.get()
        finally:
            stream.stop()
            stream.close()

    return sr, gen()


class Display:
    """One status line updated in place (``\\r``) on a terminal: time, a level meter and the
    top-k classes; one line per frame when the output is not a terminal (logs, pipes)."""

    def __init__(self, top_k: int, stream=None, live: bool | None = None) -> None:
        self.top_k, self.stream = top_k, stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.width = 0

    @staticmethod
    def meter(level_db: float, width: int = 12, floor_db: float = -60.0) -> str:
        """``[######------]``: the level from ``floor_db`` to 0 dBFS."""
        filled = round(width * min(1.0, max(0.0, (level_db - floor_db) / -floor_db)))
        return "[" + "#" * filled + "-" * (width - filled) + "]"

    def show(self, frame: Frame, classes: list[str]) -> None:
        """Print ``frame``'s line."""
        order = np.argsort(-frame.probabilities, kind="stable")[: self.top_k]
        top = "  ".join(f"{classes[i]} {frame.probabilities[i]:.2f}" for i in order)
        line = f"{frame.time:7.2f} s {self.meter(frame.level_db)} {frame.level_db:6.1f} dB  {top}"
        if self.live:
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the in-place line."""
        if self.live and self.width:
            self.stream.write("\n")
            self.stream.flush()


def write_log(path: str | os.PathLike, frames: list[Frame], classes: list[str]) -> Path:
    """``time_s, top1, probability, level_db`` per frame as CSV, written atomically."""
    from wb.runs import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["time_s", "top1", "probability", "level_db"])
    for f in frames:
        k = int(f.probabilities.argmax())
        w.writerow([f"{f.time:.3f}", classes[k], f"{f.probabilities[k]:.4f}", f"{f.level_db:.1f}"])
    return atomic_write_text(path, buf.getvalue())


def listen(
    checkpoint: str | os.PathLike,
    input_path: str | os.PathLike | None = None,
    fast: bool = False,
    hop_seconds: float = 0.5,
    top_k: int = 3,
    log: str | os.PathLike | None = None,
    input_device: str | int | None = None,
    display: Display | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[list[Frame], list[str]]:
    """Classify the microphone, or ``input_path`` played in real time, until it ends or
    Ctrl-C; every frame is shown on ``display`` and, with ``log``, written to a CSV file.

    Args:
        checkpoint: model file written by ``wb classify`` (``RUN/model.pt``).
        input_path: audio file to stream instead of the microphone.
        fast: with ``input_path``, do not wait for real time.
        hop_seconds: seconds between two classifications.
        top_k: classes shown per frame.
        log: CSV destination (``time_s, top1, probability, level_db``); written on exit,
            Ctrl-C included.
        input_device: sounddevice input device (name or index; default: the system's).
        display: where frames are shown (default: a :class:`Display` on stderr).
        sleep, clock: the real-time wait and its clock in seconds (tests replace them).

    Returns:
        ``(frames, class names)``.

    Raises:
        WbError: bad model file, no audio input; AudioError: unreadable ``input_path``.
    """
    from classify.predict import load_classifier

    model, meta = load_classifier(checkpoint)
    classes = list(meta["classes"])
    sr = int(meta["sample_rate"])
    window = float((meta.get("length") or {}).get("seconds") or 1.0)
    clf = SlidingClassifier(model, sr, window, hop_seconds)
    block = min(hop_seconds, 0.1)
    if input_path is not None:
        in_sr, blocks = file_blocks(input_path, block)
    else:
        in_sr, blocks = microphone_blocks(block, input_device)
    display = display or Display(top_k)
    frames: list[Frame] = []
    start = clock()
    consumed = 0.0
    try:
        try:
            for chunk in _resampled(blocks, in_sr, sr):
                for f in clf.push(chunk):
                    frames.append(f)
                    display.show(f, classes)
                consumed += len(chunk) / sr
                if input_path is not None and not fast:
                    ahead = consumed - (clock() - start)
                    if ahead > 0:
                        sleep(ahead)
        except KeyboardInterrupt:
            pass
        finally:
            blocks.close()
        for f in clf.finish():
            frames.append(f)
            display.show(f, classes)
    finally:
        display.close()
        if log is not None:
            write_log(log, frames, classes)
    return frames, classes


def summary(frames: list[Frame], classes: list[str]) -> tuple[str, float]:
    """The class with the highest mean probability over ``frames``, and that probability.

    Raises:
        WbError: no frames (nothing was heard).
    """
    if not frames:
        raise WbError("no audio was classified (the input is empty)")
    mean = np.mean([f.probabilities for f in frames], axis=0)
    k = int(mean.argmax())
    return classes[k], float(mean[k])
