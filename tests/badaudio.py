"""Bad and odd audio files for the bad-input tests (generated on the fly, never committed)."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import soundfile as sf


def sine(sr: int, seconds: float, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    """``(channels, samples)`` float32 sine at ``freq`` Hz, amplitude 0.5 (channel k scaled)."""
    t = np.arange(int(sr * seconds)) / sr
    x = 0.5 * np.sin(2 * math.pi * freq * t).astype(np.float32)
    return np.stack([x * (0.5 + 0.5 * c / max(1, channels - 1)) for c in range(channels)])


def pcm16_wav(path: Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Write a PCM_16 WAV by hand, so that any header sample rate (1 Hz, 1 MHz) can be stored.

    ``samples``: ``(channels, n)`` in [-1, 1].
    """
    ch, n = samples.shape
    data = (np.clip(samples, -1, 1).T * 32767).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, ch, sample_rate, sample_rate * ch * 2, ch * 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data))
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body) + len(data)) + body + data)
    return path


#: Cases every command must refuse with one ``error:`` line and a non-zero exit.
MUST_FAIL = ("missing", "text", "zero_bytes", "truncated", "nan", "rate_1hz", "rate_1mhz")
#: Odd but legal files: a command either handles them or refuses them with one line.
ODD = ("one_sample", "eight_channels", "rate_44101")


def make(tmp: Path, case: str) -> Path:
    """Create the file for ``case`` (a name in :data:`MUST_FAIL` or :data:`ODD`) in ``tmp``."""
    tmp.mkdir(parents=True, exist_ok=True)
    p = tmp / f"{case}.wav"
    if case == "missing":
        return p
    if case == "text":
        p.write_text("this is not audio\n" * 20)
    elif case == "zero_bytes":
        p.write_bytes(b"")
    elif case == "truncated":
        full = pcm16_wav(tmp / "full.wav", sine(16000, 0.5), 16000)
        p.write_bytes(full.read_bytes()[:30])  # cut inside the RIFF header
        full.unlink()
    elif case == "nan":
        x = sine(16000, 1.0)
        x[0, 100] = np.nan
        sf.write(p, x.T, 16000, subtype="FLOAT")
    elif case == "rate_1hz":
        pcm16_wav(p, sine(16000, 1.0), 1)
    elif case == "rate_1mhz":
        pcm16_wav(p, sine(16000, 1.0), 1_000_000)
    elif case == "one_sample":
        pcm16_wav(p, np.full((1, 1), 0.25, np.float32), 16000)
    elif case == "eight_channels":
        pcm16_wav(p, sine(16000, 1.0, channels=8), 16000)
    elif case == "rate_44101":
        pcm16_wav(p, sine(44101, 3.0, channels=2), 44101)
    else:
        raise ValueError(f"unknown case {case!r}")
    return p
