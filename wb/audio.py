"""Audio file I/O with validation: every bad input raises :class:`~wb.errors.AudioError`.

Tensors are ``float32`` shaped ``(channels, samples)`` with samples in [-1, 1] for PCM files.
WAV / FLAC / OGG / AIFF are read with soundfile (libsndfile); MP3, M4A and anything else go
through the ``ffmpeg`` / ``ffprobe`` binaries. Resampling uses
:func:`torchaudio.functional.resample` (band-limited windowed-sinc interpolation, Hann
window, as in Smith's resampling method).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from wb.errors import AudioError
from wb.runs import default_mode

SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")
_SOUNDFILE_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".au", ".w64", ".caf"}


@dataclass(frozen=True)
class AudioInfo:
    """Header facts about an audio file.

    Attributes:
        sample_rate: samples per second (Hz).
        channels: number of channels.
        frames: samples per channel (may be an estimate for compressed formats).
    """

    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sample_rate


def _check_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, not an audio file")
    if p.stat().st_size == 0:
        raise AudioError(f"{p}: file is empty (0 bytes)")
    return p


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:160]


def _ffprobe(p: Path) -> AudioInfo:
    if shutil.which("ffprobe") is None:
        raise AudioError(
            f"{p}: format not readable by libsndfile and ffprobe/ffmpeg is not installed "
            "(apt-get install ffmpeg)"
        )
    cmd = [
        "ffprobe", "-v", "error", "-select_streams", "a:0",
        "-show_entries", "stream=sample_rate,channels,duration", "-of", "json", str(p),
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True)
    try:
        stream = json.loads(res.stdout)["streams"][0]
        sr, ch = int(stream["sample_rate"]), int(stream["channels"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise AudioError(f"{p}: not a readable audio file") from None
    try:
        frames = int(round(float(stream.get("duration", 0.0)) * sr))
    except ValueError:
        frames = 0
    return AudioInfo(sr, ch, frames)


def info(path: str | os.PathLike) -> AudioInfo:
    """Read an audio file's header without decoding the samples.

    Args:
        path: file to inspect.

    Returns:
        :class:`AudioInfo` with sample rate (Hz), channel count and frames.

    Raises:
        AudioError: missing file, directory, empty file, or not a readable audio file.
    """
    p = _check_path(path)
    try:
        i = sf.info(str(p))
        return AudioInfo(int(i.samplerate), int(i.channels), int(i.frames))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        if p.suffix.lower() in _SOUNDFILE_EXTENSIONS and shutil.which("ffprobe") is None:
            raise AudioError(f"{p}: not a readable audio file ({_short(exc)})") from None
    return _ffprobe(p)


def _read_soundfile(p: Path) -> tuple[np.ndarray, int]:
    data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    return data.T, int(sr)


def _read_ffmpeg(p: Path) -> tuple[np.ndarray, int]:
    hdr = _ffprobe(p)
    cmd = [
        "ffmpeg", "-nostdin", "-v", "error", "-i", str(p), "-map", "0:a:0",
        "-f", "f32le", "-acodec", "pcm_f32le", "-",
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True)
    if res.returncode != 0:
        msg = res.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(
            f"{p}: ffmpeg could not decode it ({msg[-1][:160] if msg else 'no detail'})"
        )
    flat = np.frombuffer(res.stdout, dtype="<f4")
    usable = len(flat) - len(flat) % hdr.channels
    return flat[:usable].reshape(-1, hdr.channels).T.copy(), hdr.sample_rate


def resample(audio: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample along the last axis with a windowed-sinc filter.

    Args:
        audio: tensor ``(..., samples)``.
        orig_sr: its sample rate in Hz.
        new_sr: the wanted sample rate in Hz.

    Returns:
        tensor ``(..., round(samples * new_sr / orig_sr))``; the input itself when rates match.

    Raises:
        AudioError: a non-positive sample rate.
    """
    if orig_sr <= 0 or new_sr <= 0:
        raise AudioError(f"sample rates must be positive, got {orig_sr} Hz -> {new_sr} Hz")
    if orig_sr == new_sr:
        return audio
    import torchaudio.functional as AF

    return AF.resample(audio, int(orig_sr), int(new_sr))


def convert_channels(
    audio: torch.Tensor, channels: int | None, name: str = "audio"
) -> torch.Tensor:
    """Apply the channel policy: mono downmix (mean), mono to stereo (duplicate), else error.

    Args:
        audio: tensor ``(channels, samples)``.
        channels: wanted channel count: ``None`` (keep), 1 or 2.
        name: what to call the audio in error messages (usually the file path).

    Returns:
        tensor ``(channels, samples)``.

    Raises:
        AudioError: ``channels`` not in (None, 1, 2), or a conversion that would invent or
            drop channels (e.g. 6 channels to stereo).
    """
    have = audio.shape[0]
    if channels is None or channels == have:
        return audio
    if channels == 1:
        return audio.mean(dim=0, keepdim=True)
    if channels == 2 and have == 1:
        return audio.expand(2, -1).clone()
    if channels == 2:
        raise AudioError(
            f"{name}: has {have} channels; only mono or stereo input can be made stereo"
        )
    raise AudioError(f"{name}: unsupported channel count {channels} requested (use 1 or 2)")


def load(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    channels: int | None = None,
    min_duration: float = 0.0,
) -> tuple[torch.Tensor, int]:
    """Decode an audio file, validate it, and optionally resample and convert channels.

    Args:
        path: WAV/FLAC/OGG/AIFF (soundfile) or MP3/M4A/any container ffmpeg reads.
        sample_rate: resample to this rate in Hz; ``None`` keeps the file's rate.
        channels: ``None`` keeps the file's channels; 1 downmixes to mono; 2 gives stereo
            (mono is duplicated; more than 2 channels is an error).
        min_duration: raise when the file is shorter than this many seconds.

    Returns:
        ``(audio, sample_rate)``: float32 tensor ``(channels, samples)`` and its rate in Hz.

    Raises:
        AudioError: missing file, directory, empty file, not audio, truncated or corrupt data,
            zero samples, NaN/Inf samples, unsupported channel count, or too short.
    """
    p = _check_path(path)
    try:
        data, sr = _read_soundfile(p)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        if p.suffix.lower() in _SOUNDFILE_EXTENSIONS and shutil.which("ffmpeg") is None:
            raise AudioError(f"{p}: not a readable audio file ({_short(exc)})") from None
        try:
            data, sr = _read_ffmpeg(p)
        except AudioError as ff_exc:
            if p.suffix.lower() in _SOUNDFILE_EXTENSIONS:
                raise AudioError(f"{p}: not a readable audio file ({_short(exc)})") from None
            raise ff_exc from None
    if data.shape[1] == 0:
        raise AudioError(f"{p}: contains no samples")
    if data.shape[0] == 0:
        raise AudioError(f"{p}: has no audio channels")
    if not np.isfinite(data).all():
        raise AudioError(f"{p}: contains NaN or Inf samples")
    duration = data.shape[1] / sr
    if duration < min_duration:
        raise AudioError(
            f"{p}: {duration:.3f} s long, shorter than the {min_duration:.3f} s needed"
        )
    audio = convert_channels(torch.from_numpy(np.ascontiguousarray(data)), channels, str(p))
    if sample_rate is not None and sample_rate != sr:
        audio = resample(audio, sr, int(sample_rate))
        sr = int(sample_rate)
    return audio.contiguous(), sr


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def save(
    path: str | os.PathLike,
    audio: torch.Tensor | np.ndarray,
    sample_rate: int,
    subtype: str = "PCM_16",
    protect: Iterable[str | os.PathLike] = (),
) -> Path:
    """Write audio atomically: a temporary file in the target folder, then rename.

    Args:
        path: destination; the format follows the extension (``.wav``, ``.flac``, ``.ogg``).
            Parent folders are created.
        audio: ``(channels, samples)`` or ``(samples,)`` tensor/array, nominally in [-1, 1].
        sample_rate: in Hz.
        subtype: ``"PCM_16"``, ``"PCM_24"`` or ``"FLOAT"``. PCM output is clipped to [-1, 1]
            with a :class:`UserWarning` when any sample exceeds it (never wrapped).
        protect: input files that must never be overwritten (e.g. the file being separated).

    Returns:
        The written path.

    Raises:
        AudioError: unknown subtype, path equal to a protected input, NaN/Inf or empty audio,
            or a write failure (the destination is then left untouched).
    """
    dest = Path(path)
    if subtype not in SUBTYPES:
        raise AudioError(f"{dest}: unknown subtype {subtype!r} (choose from {', '.join(SUBTYPES)})")
    for src in protect:
        src = Path(src)
        if dest.resolve() == src.resolve() or _same_file(dest, src):
            raise AudioError(f"{dest}: refusing to overwrite the input file")
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().to("cpu", torch.float32).numpy()
    arr = np.asarray(audio, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise AudioError(f"{dest}: expected audio shaped (channels, samples), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise AudioError(f"{dest}: audio to write contains NaN or Inf samples")
    if subtype != "FLOAT":
        peak = float(np.abs(arr).max())
        if peak > 1.0:
            warnings.warn(f"{dest}: peak {peak:.3f} exceeds 1.0; clipping", stacklevel=2)
            arr = np.clip(arr, -1.0, 1.0)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=dest.suffix, dir=dest.parent)
    os.close(fd)
    try:
        sf.write(tmp, arr.T, int(sample_rate), subtype=subtype)
        os.chmod(tmp, default_mode())
        os.replace(tmp, dest)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as exc:
        raise AudioError(f"{dest}: could not write audio ({_short(exc)})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest
