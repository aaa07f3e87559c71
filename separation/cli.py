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
    "--repo",
    default=None,
    type=click.Path(file_okay=False, path_type=str),
    metavar="DIR",
    help="Local folder of Demucs weights (<sig>-<sha256[:8]>.th) and bags (<name>.yaml): "
    "--model is looked up there, offline.",
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
    "--format",
    "fmt",
    type=click.Choice(["wav", "flac", "mp3"]),
    default="wav",
    show_default=True,
    help="Output file format (mp3: LAME through libsndfile; 8 to 48 kHz inputs).",
)
@click.option(
    "--bit-depth",
    type=click.Choice(["16", "24", "32f"]),
    default="16",
    show_default=True,
    help="Samples of wav/flac files: 16- or 24-bit integers, or 32-bit float (wav only).",
)
@click.option(
    "--two-stems",
    default=None,
    metavar="STEM",
    help="Write STEM and no_STEM (the sum of the other stems), e.g. --two-stems vocals.",
)
@click.option(
    "--shifts",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="N",
    help="Average N runs on the input shifted by random amounts up to 0.5 s (Demucs' shift "
    "trick: a little better, N times slower; 0 is deterministic).",
)
@click.option(
    "--postfilter",
    default=None,
    metavar="KIND",
    help="Refine each chunk's estimates with the mixture: none, consistency (what the stems "
    "miss of the mixture is shared out), mask or mask:ALPHA (a soft mask |E_j|^ALPHA / sum "
    "|E_k|^ALPHA on the mixture's STFT; 2 is a Wiener filter); both make the stems sum to the "
    "mixture at the model's rate and channels. Default: the one stored with the model (none "
    "for Demucs models).",
)
@click.option(
    "--filename",
    "template",
    default="{track}/{stem}.{ext}",
    show_default=True,
    metavar="TEMPLATE",
    help="Where each stem goes under --out: {track} (input name), {trackext}, {parent} "
    "(the input's folder), {stem}, {ext}; each track needs its own folder, e.g. "
    "'{parent}/{track}/{stem}.{ext}' for many inputs named mixture.wav.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Files separated at the same time (one model, shared).",
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
    repo: str | None,
    out_dir: str,
    device: str,
    segment: float | None,
    overlap: float | None,
    stems: str | None,
    fmt: str,
    bit_depth: str,
    two_stems: str | None,
    shifts: int,
    postfilter: str | None,
    template: str,
    jobs: int,
    high_band: bool,
    report: bool,
) -> None:
    """Separate each INPUT into stems, written to DIR/<input stem>/<source>.wav.

    Stems have the input's sample rate and channel count. A track folder written by an earlier
    wb separate is replaced; any other existing folder of that name is left alone (error).

    \b
    wb separate choir.wav                        # shipped SATB model
    wb separate song.mp3 --model htdemucs        # vocals, drums, bass, other
    wb separate song.mp3 --model htdemucs --two-stems vocals --format mp3
    wb separate a.wav b.flac --model runs/satb/best.pt --out stems/
    wb separate */mixture.wav --filename '{parent}/{stem}.{ext}' -j 2
    wb separate choir.wav --report               # + separated/choir/report.html
    """
    from concurrent.futures import ThreadPoolExecutor

    from separation.files import encoding, separate_file, split_template, track_folder
    from separation.hub import load_separator
    from separation.postfilter import PostFilter
    from wb import audio
    from wb.progress import progress

    try:
        _, subtype = encoding(fmt, bit_depth)
        split_template(template)
        PostFilter.parse(postfilter)
    except WbError as exc:
        raise click.UsageError(str(exc)) from None
    if two_stems and stems:
        raise click.UsageError("--two-stems and --stems are mutually exclusive")
    if repo is not None and model_name is None:
        raise click.UsageError("--repo needs --model NAME (a bag or signature in DIR)")
    dev = _device(device)
    loaded: dict = {}

    def get_separator():
        # loaded on the first input with a readable header (inputs that are not audio are
        # reported without a model); a model error (or a bad --stems/--segment) stops all
        if not loaded:
            sep = load_separator(model_name, device=dev, repo=repo)
            wanted = _parse_stems(stems, list(sep.sources))
            if two_stems and two_stems not in sep.sources:
                raise click.BadParameter(
                    f"{two_stems} is not a source of this model ({', '.join(sep.sources)})",
                    param_hint="--two-stems",
                )
            try:
                sep = sep.with_chunking(segment, overlap)
            except WbError as exc:
                raise click.BadParameter(str(exc), param_hint="--segment") from None
            sep = sep.with_postfilter(postfilter)  # checked before any model work
            loaded.update(sep=sep, wanted=wanted)
        return loaded["sep"], loaded["wanted"]

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise WbError(f"--out {out}: exists and is not a folder")
    failed = 0
    used: dict[Path, str] = {}
    todo = []
    for path in inputs:  # cheap checks first: names, collisions, headers
        try:
            folder = track_folder(template, path)
            dest = (out / folder).resolve()
            if dest in used:
                raise WbError(
                    f"{path}: output folder {out / folder} is already used by {used[dest]} in "
                    "this run (rename one input, or use --filename '{parent}/{track}/{stem}.{ext}')"
                )
            audio.info(path)  # header only: the samples are checked as separate_file streams
        except WbError as exc:
            click.echo(f"error: {exc}", err=True)
            failed += 1
            continue
        used[dest] = path
        todo.append(path)
    if not todo:
        raise SystemExit(1)
    sep, wanted = get_separator()
    names = [two_stems, f"no_{two_stems}"] if two_stems else wanted
    debug = (click.get_current_context().obj or {}).get("debug")

    def one(path: str) -> tuple[list[str], list[str]]:
        """Separate one input: (stdout lines, error lines)."""
        try:
            folder = separate_file(
                sep, path, out, wanted, list(inputs), subtype, device=dev, high_band=high_band,
                fmt=fmt, template=template, two_stems=two_stems, shifts=shifts,
                quiet=True if jobs > 1 else None,
            )  # fmt: skip
        except WbError as exc:
            return [], [f"error: {exc}"]
        except Exception as exc:  # noqa: BLE001 - one file's failure must not stop the others
            if debug:
                traceback.print_exc()
            msg = " ".join(str(exc).split())[:160]
            return [], [f"error: {path}: {type(exc).__name__}: {msg} (rerun with --debug)"]
        lines = [f"{path} -> {folder}/ ({', '.join(names)})"]
        if report:
            from wb.report import build_report

            try:
                lines.append(f"report: {build_report(folder)}")
            except WbError as exc:
                return lines, [f"error: {path}: report: {exc}"]
        return lines, []

    bar = progress(total=len(todo), desc="files", unit="file", quiet=len(todo) < 2 or None)
    with bar, ThreadPoolExecutor(max_workers=min(jobs, len(todo))) as pool:
        for lines, errors in pool.map(one, todo):
            for line in lines:
                click.echo(line)
            for line in errors:
                click.echo(line, err=True)
            failed += bool(errors)
            bar.update(1)
    if failed:
        raise SystemExit(1)
