"""Audio file I/O with validation: every bad input raises :class:`~wb.errors.AudioError`.

Tensors are ``float32`` shaped ``(channels, samples)`` with samples in [-1, 1] for PCM files.
WAV / FLAC / OGG / AIFF are read with soundfile (libsndfile); MP3, M4A and anything else go
through the ``ffmpeg`` / ``ffprobe`` binaries, which always get the path as a local file
(``file:`` protocol, only the ``file`` protocol allowed) and run under a timeout. Resampling
uses libsoxr (:func:`soxr.resample`, "HQ": 20-bit precision, linear phase), whose cost does not
depend on how the two rates relate (a sinc kernel built from ``rate / gcd`` needs gigabytes
for 44,101 Hz -> 16 kHz). Sample rates outside :data:`MIN_SAMPLE_RATE` ..
:data:`MAX_SAMPLE_RATE` are refused.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from wb import subproc
from wb.errors import AudioError, WbError
from wb.runs import default_mode

SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")
#: Sample rates (Hz) accepted from files and asked of :func:`resample`.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 384_000
#: Seconds ``ffprobe`` may take, and ``ffmpeg`` may take to produce each decoded block.
SUBPROCESS_TIMEOUT = 60.0
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


def check_sample_rate(sample_rate: int, name: str = "audio") -> int:
    """Return ``sample_rate`` as an int if it lies in 1 kHz .. 384 kHz.

    Raises:
        AudioError: a rate outside :data:`MIN_SAMPLE_RATE` .. :data:`MAX_SAMPLE_RATE`.
    """
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"{name}: sample rate {sample_rate} Hz is outside the supported "
            f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    return int(sample_rate)


def _ffmpeg_input(p: Path) -> list[str]:
    """``-i`` arguments that make ffmpeg/ffprobe read ``p`` as a local file, whatever its name
    (``-x.wav`` is not an option, ``http:a.wav`` not a URL) and whatever it references (a
    playlist cannot open other protocols)."""
    return ["-protocol_whitelist", "file", "-i", f"file:{p.resolve()}"]


def _ffprobe(p: Path) -> AudioInfo:
    if shutil.which("ffprobe") is None:
        raise AudioError(
            f"{p}: format not readable by libsndfile and ffprobe/ffmpeg is not installed "
            "(apt-get install ffmpeg)"
        )
    cmd = [
        "ffprobe", "-v", "error", "-select_streams", "a:0",
        "-show_entries", "stream=sample_rate,channels,duration", "-of", "json", *_ffmpeg_input(p),
    ]  # fmt: skip
    try:
        res = subproc.run(cmd, SUBPROCESS_TIMEOUT, "ffprobe", text=False)
    except WbError as exc:
        raise AudioError(f"{p}: {exc}") from None
    try:
        stream = json.loads(res.stdout.decode("utf-8", errors="replace"))["streams"][0]
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
        hdr = AudioInfo(int(i.samplerate), int(i.channels), int(i.frames))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        if p.suffix.lower() in _SOUNDFILE_EXTENSIONS and shutil.which("ffprobe") is None:
            raise AudioError(f"{p}: not a readable audio file ({_short(exc)})") from None
        hdr = _ffprobe(p)
    check_sample_rate(hdr.sample_rate, str(p))
    return hdr


DEFAULT_BLOCK_FRAMES = 1 << 16


def _soundfile_blocks(p: Path, block_frames: int) -> tuple[AudioInfo, Iterator[np.ndarray]]:
    """Open ``p`` with libsndfile (raises its own errors when it cannot)."""
    f = sf.SoundFile(str(p))
    hdr = AudioInfo(int(f.samplerate), int(f.channels), int(f.frames))

    def blocks() -> Iterator[np.ndarray]:
        with f:
            while True:
                try:
                    data = f.read(block_frames, dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError) as exc:
                    raise AudioError(f"{p}: could not decode it ({_short(exc)})") from None
                if data.shape[0] == 0:
                    return
                yield data.T

    return hdr, _Blocks(blocks(), f.close)


def _ffmpeg_blocks(p: Path, block_frames: int) -> tuple[AudioInfo, Iterator[np.ndarray]]:
    """Decode ``p`` with an ``ffmpeg`` subprocess piping float32 samples (first audio stream)."""
    hdr = _ffprobe(p)
    if shutil.which("ffmpeg") is None:
        raise AudioError(f"{p}: format not readable by libsndfile and ffmpeg is not installed")
    check_sample_rate(hdr.sample_rate, str(p))
    cmd = [
        "ffmpeg", "-nostdin", "-v", "error", *_ffmpeg_input(p), "-map", "0:a:0",
        "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1",
    ]  # fmt: skip

    def blocks() -> Iterator[np.ndarray]:
        frame_bytes = 4 * hdr.channels
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL
            )
            try:
                while True:
                    raw = _read_pipe(proc.stdout, block_frames * frame_bytes, p)
                    usable = len(raw) - len(raw) % frame_bytes
                    if usable:
                        flat = np.frombuffer(raw[:usable], dtype="<f4")
                        yield flat.reshape(-1, hdr.channels).T.copy()
                    if len(raw) < block_frames * frame_bytes:
                        break
                try:
                    code = proc.wait(timeout=SUBPROCESS_TIMEOUT)
                except subprocess.TimeoutExpired:
                    raise AudioError(f"{p}: ffmpeg did not finish") from None
                if code != 0:
                    err.seek(0)
                    msg = err.read().decode(errors="replace").strip().splitlines()
                    raise AudioError(
                        f"{p}: ffmpeg could not decode it ({msg[-1][:160] if msg else 'no detail'})"
                    )
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stdout.close()

    return hdr, _Blocks(blocks())


def _read_pipe(pipe, n: int, p: Path, timeout: float | None = None) -> bytes:
    """Read up to ``n`` bytes (fewer only at end of stream) from a subprocess pipe.

    Raises:
        AudioError: no byte arrived for ``timeout`` seconds (default
            :data:`SUBPROCESS_TIMEOUT`): the decoder hangs.
    """
    timeout = SUBPROCESS_TIMEOUT if timeout is None else timeout
    if os.name == "nt":  # select() takes only sockets there: a plain blocking read
        return pipe.read(n)
    fd, parts, got = pipe.fileno(), [], 0
    while got < n:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise AudioError(f"{p}: ffmpeg produced nothing for {timeout:.0f} s")
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


class _Blocks:
    """Iterator over a generator of blocks whose :meth:`close` also releases the resource,
    even when iteration never started (a plain generator's ``close`` would not run its
    cleanup then)."""

    def __init__(self, gen: Iterator[np.ndarray], release=None) -> None:
        self._gen, self._release = gen, release

    def __iter__(self) -> _Blocks:
        return self

    def __next__(self) -> np.ndarray:
        return next(self._gen)

    def close(self) -> None:
        """Stop: close the generator, then the file (idempotent)."""
        self._gen.close()
        if self._release is not None:
            self._release()


def read_blocks(
    path: str | os.PathLike, block_frames: int = DEFAULT_BLOCK_FRAMES
) -> tuple[AudioInfo, Iterator[np.ndarray]]:
    """Open an audio file for streaming: its header, and its samples block by block.

    Memory stays at one block whatever the file's length (used by ``wb separate`` on long
    recordings). WAV / FLAC / OGG / AIFF are read with soundfile; anything else is decoded by
    an ``ffmpeg`` subprocess whose output is read through a pipe.

    Args:
        path: the audio file.
        block_frames: samples per channel in each block (the last one may be shorter).

    Returns:
        ``(info, blocks)``: :class:`AudioInfo` (``frames`` is an estimate for compressed
        formats) and an iterator of float32 arrays ``(channels, block_frames)``.

    Raises:
        AudioError: at once for a missing or empty file or an unreadable header; while
            iterating for data that cannot be decoded (for ffmpeg formats, any decoding
            failure), NaN/Inf samples or a file without samples. Consumers must not make
            their output final before the iterator is exhausted, so that a bad file never
            leaves a partial output; closing the iterator (``.close()``) releases the file
            or stops the ffmpeg process.
    """
    p = _check_path(path)
    if block_frames < 1:
        raise AudioError(f"block_frames must be positive, got {block_frames}")
    try:
        hdr, raw = _soundfile_blocks(p, block_frames)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        if p.suffix.lower() in _SOUNDFILE_EXTENSIONS and shutil.which("ffmpeg") is None:
            raise AudioError(f"{p}: not a readable audio file ({_short(exc)})") from None
        try:
            hdr, raw = _ffmpeg_blocks(p, block_frames)
        except AudioError as ff_exc:
            if p.suffix.lower() in _SOUNDFILE_EXTENSIONS:
                raise AudioError(f"{p}: not a readable audio file ({_short(exc)})") from None
            raise ff_exc from None
    try:
        check_sample_rate(hdr.sample_rate, str(p))
    except AudioError:
        raw.close()
        raise
    if hdr.channels < 1:
        raw.close()
        raise AudioError(f"{p}: has no audio channels")

    def checked() -> Iterator[np.ndarray]:
        total = 0
        for block in raw:
            if not np.isfinite(block).all():
                raise AudioError(f"{p}: contains NaN or Inf samples")
            total += block.shape[1]
            yield block
        if total == 0:
            raise AudioError(f"{p}: contains no samples")

    return hdr, _Blocks(checked(), raw.close)


def resample(audio: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample along the last axis with libsoxr ("HQ" quality, linear phase).

    Runs on the CPU (a tensor on another device is moved there and back); time and memory are
    linear in the length for any pair of rates.

    Args:
        audio: tensor ``(..., samples)``.
        orig_sr: its sample rate in Hz.
        new_sr: the wanted sample rate in Hz.

    Returns:
        tensor ``(..., round(samples * new_sr / orig_sr))``; the input itself when rates match.

    Raises:
        AudioError: a rate outside :data:`MIN_SAMPLE_RATE` .. :data:`MAX_SAMPLE_RATE`.
    """
    orig_sr = check_sample_rate(orig_sr, "resample input")
    new_sr = check_sample_rate(new_sr, "resample output")
    if orig_sr == new_sr:
        return audio
    import soxr

    shape, n = audio.shape[:-1], audio.shape[-1]
    flat = audio.detach().reshape(-1, n).to("cpu", torch.float32).numpy()
    if n == 0:
        out = np.zeros((flat.shape[0], 0), np.float32)
    else:
        out = soxr.resample(np.ascontiguousarray(flat.T), orig_sr, new_sr, quality="HQ").T
    y = torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))
    return y.reshape(*shape, y.shape[-1]).to(audio.device, audio.dtype)


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
    hdr, blocks = read_blocks(path, 1 << 20)
    parts = list(blocks)
    data = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    del parts
    p, sr = Path(path), hdr.sample_rate
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
