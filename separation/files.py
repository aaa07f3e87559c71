"""Apply a separator to audio files: ``<out>/<input stem>/<source>.wav``, all or nothing.

:func:`separate_file` reads, separates and writes block by block
(:func:`wb.audio.read_blocks`, :class:`separation.inference.StreamSeparator`), so memory does
not grow with the input's length. A track's stems are written into a temporary folder next to
the destination and renamed into place when all are written, so a failure never leaves a
partial track folder; an input file is never overwritten, and the scratch folder of a run that
was killed is removed by the next one.

Each track folder also gets a marker file (``.wb-separate.json``) listing the stems written. An
existing ``<out>/<input stem>`` folder is replaced only when it is empty or holds nothing but
that marker, the ``.wav`` files it lists and a ``report.html`` (an earlier ``wb separate``
output): separating ``data/song.wav`` into ``data`` never wipes a ``data/song/`` folder of
other files.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from separation.separator import Separator
from wb.errors import AudioError, WbError
from wb.report import REPORT_NAME
from wb.runs import remove_stale_temps, temp_dir

MARKER = ".wb-separate.json"


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _written_by_wb(folder: Path) -> bool:
    """True if ``folder`` is empty or holds only a :data:`MARKER`, the stems it lists and a
    ``report.html``."""
    entries = {p.name: p for p in folder.iterdir()}
    if not entries:
        return True
    marker = entries.pop(MARKER, None)
    if marker is None or not marker.is_file():
        return False
    report = entries.pop(REPORT_NAME, None)  # wb report / wb separate --report
    if report is not None and (not report.is_file() or report.is_symlink()):
        return False
    try:
        listed = set(json.loads(marker.read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return all(
        name in listed and name.endswith(".wav") and p.is_file() and not p.is_symlink()
        for name, p in entries.items()
    )


def _install(tmp: Path, dest: Path) -> None:
    """Move the finished ``tmp`` folder to ``dest``, replacing an older ``dest`` folder.

    Raises:
        WbError: ``dest`` is not a folder, or holds anything but an earlier ``wb separate``
            output (see :func:`_written_by_wb`).
    """
    old = None
    if dest.exists() or dest.is_symlink():
        if not dest.is_dir() or dest.is_symlink():
            raise WbError(f"{dest}: exists and is not a folder; pick another --out")
        if not _written_by_wb(dest):
            raise WbError(
                f"{dest}: folder exists and holds files not written by wb separate; "
                "refusing to replace it (pick another --out)"
            )
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        os.replace(dest, old / dest.name)
    try:
        os.replace(tmp, dest)
    except OSError as exc:
        if old is not None:  # put the previous folder back
            os.replace(old / dest.name, dest)
            old.rmdir()
        raise WbError(f"{dest}: could not move the separated stems into place ({exc})") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_stems(sep, blocks, tmp: Path, sample_rate: int, subtype: str) -> list[str]:
    """Push every input block through ``sep`` and append its output to one WAV per stem in
    ``tmp``; PCM output is clipped to [-1, 1] (one warning per stem that needed it)."""
    import warnings

    import numpy as np
    import soundfile as sf

    from wb.errors import AudioError

    names = [f"{name}.wav" for name in sep.stems]
    peaks = [0.0] * len(names)
    files = []

    def write(out) -> None:
        arr = out.numpy()
        if arr.shape[-1] == 0:
            return
        if not np.isfinite(arr).all():
            raise WbError("the model produced NaN or Inf samples; nothing was written")
        for k, f in enumerate(files):
            stem = arr[k]
            if subtype != "FLOAT":
                peak = float(max(stem.max(), -stem.min()))
                if peak > 1.0:
                    peaks[k] = max(peaks[k], peak)
                    stem = np.clip(stem, -1.0, 1.0)
            if subtype == "PCM_16":  # libsndfile's own conversion (a test checks), faster
                stem = np.floor(stem * 32768.0).clip(-32768, 32767).astype(np.int16)
            try:
                f.write(stem.T)
            except (sf.LibsndfileError, RuntimeError, OSError) as exc:
                raise AudioError(f"{tmp}: could not write the stems ({exc})") from None

    try:
        for name in names:
            try:
                files.append(sf.SoundFile(tmp / name, "w", sample_rate, sep.channels, subtype))
            except (sf.LibsndfileError, RuntimeError, OSError) as exc:
                raise AudioError(f"{tmp}: could not write the stems ({exc})") from None
        for block in blocks:
            write(sep.push(block))
        write(sep.finish())
    finally:
        sep.close()
        for f in files:
            f.close()
    for name, peak in zip(names, peaks, strict=True):
        if peak > 1.0:
            warnings.warn(f"{name}: peak {peak:.3f} exceeds 1.0; clipping", stacklevel=2)
    return names


def separate_file(
    separator: Separator,
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    stems: Sequence[str] | None = None,
    protect: Sequence[str | os.PathLike] = (),
    subtype: str = "PCM_16",
    block_seconds: float = 10.0,
    device: torch.device | str | None = None,
    quiet: bool | None = None,
    high_band: bool = True,
) -> Path:
    """Separate an audio file into ``out_dir/<path stem>/<source>.wav`` (all or nothing).

    The input is read, separated and written block by block (:func:`wb.audio.read_blocks`,
    :class:`separation.inference.StreamSeparator`), so memory does not grow with its length.
    The stems go to a temporary folder renamed into place once every stem is complete.

    Args:
        separator: the model and its chunking (:func:`separation.hub.load_separator`).
        path: the input file (names the track folder); stems get its sample rate (Hz) and
            channel count.
        out_dir: output root folder.
        stems: sources to write (default all, in the model's order).
        protect: input files that must never be overwritten or removed (``path`` always is).
        subtype: ``PCM_16``, ``PCM_24`` or ``FLOAT``.
        block_seconds: input seconds read per block.
        device: where the model runs (default: where it is).
        quiet: no progress bar (``None`` follows ``WB_QUIET``).
        high_band: full-band stems from a model of a lower rate (see
            :class:`separation.inference.StreamSeparator`).

    Returns:
        The track folder.

    Raises:
        AudioError: unreadable or corrupt input (also when found mid-way), more than two
            channels, write failure.
        WbError: the destination folder would contain or replace an input file, or exists
            and holds anything but an earlier ``wb separate`` output; the model produced
            NaN/Inf.
    """
    from separation.inference import StreamSeparator
    from wb import audio

    out_dir = Path(out_dir)
    protect = [path, *protect]
    dest = out_dir / Path(path).stem
    for src in protect:
        if _inside(Path(src), dest):
            raise WbError(f"{dest}: refusing to replace this folder, it contains the input {src}")
    hdr = audio.info(path)
    if hdr.channels not in (1, 2):
        raise AudioError(
            f"{path}: has {hdr.channels} channels; only mono or stereo audio can be separated"
        )
    info, raw = audio.read_blocks(path, max(1, int(block_seconds * hdr.sample_rate)))
    with contextlib.closing(raw):  # stops an ffmpeg decoder whatever happens below
        first = next(raw)  # a file empty or corrupt from the start fails before model work
        sep = StreamSeparator(
            separator.model, info.sample_rate, info.channels,
            list(stems) if stems else None, segment=separator.segment,
            overlap=separator.overlap, device=device, expected_frames=info.frames, quiet=quiet,
            high_band=high_band,
        )  # fmt: skip
        try:
            remove_stale_temps(dest, "tmp", parent=out_dir)  # left by a killed earlier run
            tmp = temp_dir(dest, "tmp", parent=out_dir)
            try:
                blocks = itertools.chain([first], raw)
                written = _write_stems(sep, blocks, tmp, info.sample_rate, subtype)
                marker = {"written_by": "wb separate", "input": str(path), "files": written}
                (tmp / MARKER).write_text(json.dumps(marker))
                _install(tmp, dest)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        finally:
            sep.close()
    return dest
