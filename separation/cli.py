"""``wb separate``: apply a separation model to audio files.

Every input is written to ``OUT/<input file stem>/<source>.wav`` at the input's sample rate and
channel count. A track's stems are written into a temporary folder next to the destination and
renamed into place when all are written, so a failure never leaves a partial track folder; an
input file is never overwritten.

Each track folder also gets a marker file (``.wb-separate.json``) listing the stems written. An
existing ``OUT/<input stem>`` folder is replaced only when it is empty or holds nothing but that
marker and the ``.wav`` files it lists (an earlier ``wb separate`` output): ``wb separate
data/song.wav --out data`` never wipes a ``data/song/`` folder of other files, it is refused
with a one-line error asking for another ``--out``.

A bad input is reported as one ``error:`` line and the others are still separated; the exit
code is then 1.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import tempfile
import traceback
from pathlib import Path

import click

from wb.errors import WbError
from wb.runs import remove_stale_temps, temp_dir


def _device(choice: str):
    import torch

    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise WbError("--device cuda: no CUDA device is available (use --device cpu)")
    return torch.device(choice)


def _parse_stems(value: str | None, sources: list[str]) -> list[str]:
    if not value:
        return sources
    wanted = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in sources]
    if unknown or not wanted:
        raise click.UsageError(
            f"--stems: unknown stem(s) {', '.join(unknown) or repr(value)}; "
            f"this model's sources: {', '.join(sources)}"
        )
    return list(dict.fromkeys(wanted))


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


MARKER = ".wb-separate.json"


def _written_by_wb(folder: Path) -> bool:
    """True if ``folder`` is empty or holds only a :data:`MARKER` and the stems it lists."""
    entries = {p.name: p for p in folder.iterdir()}
    if not entries:
        return True
    marker = entries.pop(MARKER, None)
    if marker is None or not marker.is_file():
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


def write_track(
    model,
    path: str,
    out_dir: Path,
    stems: list[str],
    protect: list[str],
    subtype: str = "PCM_16",
    block_seconds: float = 10.0,
    **options,
) -> Path:
    """Separate an audio file into ``out_dir/<path stem>/<source>.wav`` (all or nothing).

    The input is read, separated and written block by block (:func:`wb.audio.read_blocks`,
    :class:`separation.inference.StreamSeparator`), so memory does not grow with its length.
    The stems go to a temporary folder renamed into place once every stem is complete.

    Args:
        model: a loaded separator (:func:`separation.export.load_separator`).
        path: the input file (names the track folder); stems get its sample rate (Hz) and
            channel count.
        out_dir: output root folder.
        stems: sources to write.
        protect: input files that must never be overwritten or removed.
        subtype: ``PCM_16``, ``PCM_24`` or ``FLOAT``.
        block_seconds: input seconds read per block.
        **options: :class:`separation.inference.StreamSeparator` options (``segment``,
            ``overlap``, ``device``).

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
    from wb.errors import AudioError

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
            model, info.sample_rate, info.channels, stems, expected_frames=info.frames, **options
        )
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


@click.command("separate")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--model",
    "model_name",
    default=None,
    metavar="NAME_OR_PATH",
    help="Shipped model name (default: satb), pretrained Demucs name (e.g. htdemucs), "
    "model file (.pt) or training checkpoint (.ckpt).",
)
@click.option(
    "--out", "out_dir", default="separated", show_default=True, metavar="DIR", help="Output folder."
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Where the model runs.",
)
@click.option(
    "--segment",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Chunk length in seconds (default: the model's).",
)
@click.option(
    "--overlap",
    type=click.FloatRange(min=0.0, max=1.0, max_open=True),
    default=None,
    metavar="FRACTION",
    help="Overlap between chunks, in [0, 1) (default: the model's, usually 0.25).",
)
@click.option(
    "--stems", default=None, metavar="NAMES", help="Comma-separated sources to write (default all)."
)
@click.option(
    "--subtype",
    type=click.Choice(["PCM_16", "PCM_24", "FLOAT"]),
    default="PCM_16",
    show_default=True,
    help="Sample format of the written WAV files.",
)
def separate(
    inputs: tuple[str, ...],
    model_name: str | None,
    out_dir: str,
    device: str,
    segment: float | None,
    overlap: float | None,
    stems: str | None,
    subtype: str,
) -> None:
    """Separate each INPUT into stems, written to DIR/<input stem>/<source>.wav.

    Stems have the input's sample rate and channel count. A track folder written by an earlier
    wb separate is replaced; any other existing folder of that name is left alone (error).

    \b
    wb separate choir.wav                        # shipped SATB model
    wb separate song.mp3 --model htdemucs --stems vocals
    wb separate a.wav b.flac --model runs/satb/best.pt --out stems/
    """
    from separation.export import load_separator
    from separation.inference import check_segment
    from wb import audio
    from wb.progress import progress

    dev = _device(device)
    loaded: dict = {}

    def get_model():
        # loaded on the first input with a readable header (inputs that are not audio are
        # reported without a model); a model error (or a bad --stems/--segment) stops all
        if not loaded:
            model = load_separator(model_name, device=dev)
            wanted = _parse_stems(stems, list(model.sources))
            if segment is not None:
                try:
                    check_segment(model, segment)
                except WbError as exc:
                    raise click.BadParameter(str(exc), param_hint="--segment") from None
            loaded.update(model=model, wanted=wanted)
        return loaded["model"], loaded["wanted"]

    out = Path(out_dir)
    options = {"segment": segment, "overlap": overlap, "device": dev}
    failed = 0
    used: dict[Path, str] = {}
    for path in progress(inputs, desc="files", unit="file", quiet=len(inputs) < 2 or None):
        try:
            dest = (out / Path(path).stem).resolve()
            if dest in used:
                raise WbError(
                    f"{path}: output folder {out / Path(path).stem} is already used by {used[dest]}"
                    " in this run (rename one input)"
                )
            audio.info(path)  # header only: the samples are checked as write_track streams them
        except WbError as exc:
            click.echo(f"error: {exc}", err=True)
            failed += 1
            continue
        model, wanted = get_model()
        try:
            folder = write_track(model, path, out, wanted, list(inputs), subtype, **options)
            used[dest] = path
        except WbError as exc:
            click.echo(f"error: {exc}", err=True)
            failed += 1
            continue
        except Exception as exc:  # noqa: BLE001 - one file's failure must not stop the others
            if (click.get_current_context().obj or {}).get("debug"):
                traceback.print_exc()
            msg = " ".join(str(exc).split())[:160]
            click.echo(f"error: {path}: {type(exc).__name__}: {msg} (rerun with --debug)", err=True)
            failed += 1
            continue
        click.echo(f"{path} -> {folder}/ ({', '.join(wanted)})")
    if failed:
        raise SystemExit(1)
