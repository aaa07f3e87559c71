"""``wb separate``: apply a separation model to audio files.

Every input is written to ``OUT/<input file stem>/<source>.wav`` at the input's sample rate and
channel count, all or nothing (:func:`separation.files.separate_file`). A bad input is reported
as one ``error:`` line and the others are still separated; the exit code is then 1.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import click

from wb.errors import WbError


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
@click.option(
    "--high-band/--no-high-band",
    default=True,
    show_default=True,
    help="Give the stems the input's band above the model's Nyquist frequency, shared out by "
    "the stems' energy just below it (an 8 kHz model still writes full-band stems); "
    "--no-high-band: stems band-limited to the model's rate.",
)
@click.option(
    "--report",
    is_flag=True,
    help="Also write DIR/<input stem>/report.html: players, spectrograms with a playhead, "
    "stems in sync with solo and mute (see wb report).",
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
    high_band: bool,
    report: bool,
) -> None:
    """Separate each INPUT into stems, written to DIR/<input stem>/<source>.wav.

    Stems have the input's sample rate and channel count. A track folder written by an earlier
    wb separate is replaced; any other existing folder of that name is left alone (error).

    \b
    wb separate choir.wav                        # shipped SATB model
    wb separate song.mp3 --model htdemucs --stems vocals
    wb separate a.wav b.flac --model runs/satb/best.pt --out stems/
    wb separate choir.wav --report               # + separated/choir/report.html
    """
    from separation.files import separate_file
    from separation.hub import load_separator
    from wb import audio
    from wb.progress import progress

    dev = _device(device)
    loaded: dict = {}

    def get_separator():
        # loaded on the first input with a readable header (inputs that are not audio are
        # reported without a model); a model error (or a bad --stems/--segment) stops all
        if not loaded:
            sep = load_separator(model_name, device=dev)
            wanted = _parse_stems(stems, list(sep.sources))
            try:
                sep = sep.with_chunking(segment, overlap)
            except WbError as exc:
                raise click.BadParameter(str(exc), param_hint="--segment") from None
            loaded.update(sep=sep, wanted=wanted)
        return loaded["sep"], loaded["wanted"]

    out = Path(out_dir)
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
            audio.info(path)  # header only: the samples are checked as separate_file streams
        except WbError as exc:
            click.echo(f"error: {exc}", err=True)
            failed += 1
            continue
        sep, wanted = get_separator()
        try:
            folder = separate_file(
                sep, path, out, wanted, list(inputs), subtype, device=dev, high_band=high_band
            )
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
        if report:
            from wb.report import build_report

            try:
                click.echo(f"report: {build_report(folder)}")
            except WbError as exc:
                click.echo(f"error: {path}: report: {exc}", err=True)
                failed += 1
    if failed:
        raise SystemExit(1)
