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

#: ``--format`` -> (libsndfile format, {``--bit-depth``: subtype}). MP3 (LAME through
#: libsndfile) has no bit depth; FLAC has no floating point.
FORMATS = {
    "wav": ("WAV", {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}),
    "flac": ("FLAC", {"16": "PCM_16", "24": "PCM_24"}),
    "mp3": ("MP3", {"16": "MPEG_LAYER_III"}),
}

#: Default ``--filename``: one folder per input, one file per stem.
DEFAULT_TEMPLATE = "{track}/{stem}.{ext}"
_TRACK_FIELDS = {"track", "trackext", "parent"}
_STEM_FIELDS = {"stem", "ext"}


def encoding(fmt: str = "wav", bit_depth: str = "16") -> tuple[str, str]:
    """``(libsndfile format, subtype)`` of ``--format`` / ``--bit-depth``.

    Raises:
        WbError: unknown format, or a bit depth the format does not have (``flac`` with
            ``32f``; ``mp3`` takes only the default ``16``, which it ignores).
    """
    if fmt not in FORMATS:
        raise WbError(f"--format {fmt}: choose from {', '.join(FORMATS)}")
    sf_format, depths = FORMATS[fmt]
    if bit_depth not in depths:
        raise WbError(
            f"--bit-depth {bit_depth}: {fmt} files take {', '.join(depths)}"
            + (" (MP3 has no bit depth)" if fmt == "mp3" else "")
        )
    return sf_format, depths[bit_depth]


def split_template(template: str) -> tuple[str, str]:
    """Check a demucs-style ``--filename`` template and split it into the track folder
    part (fields ``{track}``, ``{trackext}``, ``{parent}``) and the file part (``{stem}``,
    ``{ext}``, and the track fields).

    Each input's stems are written all or nothing into a folder of their own, so the
    template must have a folder part, and the file part must hold ``{stem}``.

    Raises:
        WbError: unknown field, no folder part, ``{stem}``/``{ext}`` in the folder part, no
            ``{stem}`` in the file part, an absolute path or ``..``.
    """
    import string

    def fields(text: str) -> set[str]:
        try:
            return {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
        except ValueError as exc:
            raise WbError(f"--filename {template!r}: {exc}") from None

    unknown = fields(template) - _TRACK_FIELDS - _STEM_FIELDS
    if unknown:
        allowed = ", ".join(f"{{{f}}}" for f in sorted(_TRACK_FIELDS | _STEM_FIELDS))
        raise WbError(f"--filename {template!r}: unknown field(s) {sorted(unknown)}; use {allowed}")
    folder, _, name = template.rpartition("/")
    if not folder or template.startswith("/") or ".." in Path(template).parts:
        raise WbError(
            f"--filename {template!r}: needs a relative folder for each track's stems, "
            "e.g. {track}/{stem}.{ext} or {parent}/{track}/{stem}.{ext}"
        )
    if fields(folder) & _STEM_FIELDS or "stem" not in fields(name):
        raise WbError(f"--filename {template!r}: {{stem}} (and {{ext}}) belong in the file name")
    return folder, name


def track_folder(template: str, path: str | os.PathLike) -> str:
    """The relative track folder of input ``path`` under ``template`` (see
    :func:`split_template`): ``{track}`` is its name without extension, ``{trackext}`` its
    extension without the dot, ``{parent}`` the name of its folder."""
    folder, _ = split_template(template)
    p = Path(path)
    values = {"track": p.stem, "trackext": p.suffix.lstrip("."),
              "parent": p.resolve().parent.name or "root"}  # fmt: skip
    return folder.format(**values)


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
        name in listed and name.rsplit(".", 1)[-1] in FORMATS and p.is_file() and not p.is_symlink()
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


def _write_stems(
    sep,
    blocks,
    tmp: Path,
    sample_rate: int,
    names: list[str],
    sf_format: str,
    subtype: str,
    two_stems: int | None = None,
) -> list[str]:
    """Push every input block through ``sep`` and append its output to one file per name in
    ``tmp`` (``names`` follow ``sep.stems``, or ``[stem, no_stem]`` with ``two_stems``, the
    index of the kept stem: the other file is the sum of all other stems, as demucs
    ``--two-stems``). Fixed-point and MP3 output is clipped to [-1, 1] (one warning per file
    that needed it)."""
    import warnings

    import numpy as np
    import soundfile as sf

    from wb.errors import AudioError

    peaks = [0.0] * len(names)
    files = []

    def write(out) -> None:
        arr = out.numpy()
        if arr.shape[-1] == 0:
            return
        if not np.isfinite(arr).all():
            raise WbError("the model produced NaN or Inf samples; nothing was written")
        if two_stems is not None:
            kept = arr[two_stems]
            arr = np.stack([kept, arr.sum(axis=0) - kept])
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
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            try:
                files.append(
                    sf.SoundFile(
                        tmp / name, "w", sample_rate, sep.channels, subtype, None, sf_format
                    )  # fmt: skip
                )
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
    fmt: str = "wav",
    template: str = DEFAULT_TEMPLATE,
    two_stems: str | None = None,
    shifts: int = 0,
) -> Path:
    """Separate an audio file into ``out_dir/<path stem>/<source>.wav`` (all or nothing).

    The input is read, separated and written block by block (:func:`wb.audio.read_blocks`,
    :class:`separation.inference.StreamSeparator`), so memory does not grow with its length.
    The stems go to a temporary folder renamed into place once every stem is complete.

    Args:
        separator: the model, its chunking and post-filter
            (:func:`separation.hub.load_separator`).
        path: the input file (names the track folder); stems get its sample rate (Hz) and
            channel count.
        out_dir: output root folder.
        stems: sources to write (default all, in the model's order).
        protect: input files that must never be overwritten or removed (``path`` always is).
        subtype: ``PCM_16``, ``PCM_24`` or ``FLOAT`` (see :func:`encoding`).
        block_seconds: input seconds read per block.
        device: where the model runs (default: where it is).
        quiet: no progress bar (``None`` follows ``WB_QUIET``).
        high_band: full-band stems from a model of a lower rate (see
            :class:`separation.inference.StreamSeparator`).
        fmt: ``wav``, ``flac`` or ``mp3`` (:data:`FORMATS`).
        template: demucs-style ``--filename`` (:func:`split_template`); the folder part is
            the track folder under ``out_dir``.
        two_stems: write this source and ``no_<source>`` (the sum of the others) instead.
        shifts: random-shift averaging (:func:`separation.inference.separate_tensor`).

    Returns:
        The track folder.

    Raises:
        AudioError: unreadable or corrupt input (also when found mid-way), more than two
            channels, write failure.
        WbError: the destination folder would contain or replace an input file, or exists
            and holds anything but an earlier ``wb separate`` output; the model produced
            NaN/Inf; a bad template, format/subtype pair or ``two_stems`` source.
    """
    from separation.inference import StreamSeparator
    from wb import audio

    out_dir = Path(out_dir)
    protect = [path, *protect]
    _, name_part = split_template(template)
    dest = out_dir / track_folder(template, path)
    sf_format = FORMATS[fmt][0]
    if subtype not in FORMATS[fmt][1].values():
        raise WbError(f"{fmt} files cannot hold {subtype} samples")
    sources = list(separator.sources)
    if two_stems is not None and two_stems not in sources:
        raise WbError(f"--two-stems {two_stems}: not a source of this model ({', '.join(sources)})")
    wanted = sources if two_stems else (list(stems) if stems else sources)
    outputs = [two_stems, f"no_{two_stems}"] if two_stems else wanted
    p = Path(path)
    values = {"track": p.stem, "trackext": p.suffix.lstrip("."),
              "parent": p.resolve().parent.name or "root", "ext": fmt}  # fmt: skip
    names = [name_part.format(stem=o, **values) for o in outputs]
    if len(set(names)) != len(names):
        raise WbError(f"--filename {template!r}: the stems' file names collide")
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
            separator.model, info.sample_rate, info.channels, wanted,
            segment=separator.segment, overlap=separator.overlap, device=device,
            expected_frames=info.frames, quiet=quiet, high_band=high_band, shifts=shifts,
            postfilter=separator.postfilter,
        )  # fmt: skip
        try:
            remove_stale_temps(dest, "tmp", parent=dest.parent)  # left by a killed earlier run
            tmp = temp_dir(dest, "tmp", parent=dest.parent)
            try:
                blocks = itertools.chain([first], raw)
                kept = sources.index(two_stems) if two_stems else None
                written = _write_stems(sep, blocks, tmp, info.sample_rate, names, sf_format,
                                       subtype, kept)  # fmt: skip
                marker = {
                    "written_by": "wb separate",
                    "input": str(Path(path).resolve()),
                    "files": written,
                }
                (tmp / MARKER).write_text(json.dumps(marker))
                _install(tmp, dest)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        finally:
            sep.close()
    return dest
