"""The music separation recipe's stages (``python -m recipes.music_separation``): 4 stems
(vocals, drums, bass, other) or vocals/accompaniment, on MUSDB18(-HQ), any custom stems
folder, or the offline synthetic songs.

=========  ==========================================================================
prepare    synthetic: render the songs (:func:`music.songs.prepare_songs`);
           musdb18hq: the official train/valid/test split of a MUSDB18-HQ folder as links;
           musdb18: decode the ``.stem.mp4`` files (stempeg) into the same layout
train      train a separation model (:func:`separation.train.train`)
evaluate   museval per track (JSON), median over frames then tracks (SiSEC 2018)
export     write a self-describing model file
=========  ==========================================================================

The config's ``profile`` (``4stem`` or ``vocals``) merges ``profiles.<profile>`` over the
config, and a MUSDB source merges the ``musdb:`` group (paper-sized settings), both before
``--set``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from wb.errors import ConfigError, WbError
from wb.recipe import Option, StageContext

RUNS = Path("runs") / "music_separation"
SOURCES_4 = ("vocals", "drums", "bass", "other")
MUSDB_SPLITS = {"train": "train", "valid": "train", "test": "test"}

#: Published MUSDB18 test figures (SDR in dB, BSSEval v4, median over frames then tracks).
ANCHORS = (
    ("Open-Unmix (Stöter et al. 2019)", {"vocals": 6.32}),
    ("Conv-TasNet (Défossez et al. 2019, Demucs paper)", {"vocals": 6.81}),
    ("HT Demucs, fine-tuned, 800 extra songs (Rouard et al. 2023)", {"mean": 9.20}),
)

PREPARE_OPTIONS = (
    Option("--source", "synthetic | musdb18hq | musdb18", key="data.source",
           type=click.Choice(["synthetic", "musdb18hq", "musdb18"])),
    Option("--musdb", "MUSDB18(-HQ) folder (train/, test/)", key="data.musdb"),
    Option("--root", "output folder", key="data.root"),
    Option("--download", "musdb18: fetch the 7 s previews into --musdb (default "
           "data/musdb18_7s)", is_flag=True),
    Option("--sha256", "expected SHA-256 of the previews archive"),
)  # fmt: skip
TRAIN_OPTIONS = (
    Option("--root", "stems root (<root>/<split>/<track>/<stem>.wav)", key="data.root"),
    Option("--run", f"run folder (default {RUNS}/<timestamp>)"),
    Option("--resume", "continue the run from last.ckpt", is_flag=True),
    Option("--devices", "Lightning devices: count, ids or auto (default: train.devices)"),
    Option("--num-nodes", "Lightning num_nodes, DDP (default: train.num_nodes)", type=int),
)
EVALUATE_OPTIONS = (
    Option("--run", "score this run folder's checkpoints/best.ckpt"),
    Option("--model", "model file, shipped name or Demucs name (e.g. htdemucs)"),
    Option("--root", "stems root to score (default: data.root)", key="data.root"),
    Option("--split", "split to score", default="test"),
    Option("--max-tracks", "score only the first N tracks", type=click.IntRange(min=1)),
    Option("--device", "cpu | cuda", default="cpu"),
)
EXPORT_OPTIONS = (
    Option("--run", "run folder (uses checkpoints/best.ckpt)"),
    Option("--out", "model file (default <run>/model.pt)"),
    Option("--half", "store float16 weights (half the size)", is_flag=True),
)


def resolve(ctx: StageContext, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The config with, in order, ``musdb:`` (for a MUSDB source),
    ``architectures.<arch>`` and ``profiles.<profile>`` merged in before ``--set``; those
    groups themselves are dropped.

    Raises:
        ConfigError: an unknown profile or architecture.
    """
    first = ctx.config(path)
    for key, group in (("profile", "profiles"), ("arch", "architectures")):
        choices = first.get(group)
        if choices is not None and str(first.get(key)) not in choices:
            raise ConfigError(
                f"{key} {first.get(key)!r} unknown (choose from {', '.join(choices)})"
            )
    overlays = []
    if str((first.get("data") or {}).get("source", "")).startswith("musdb"):
        overlays.append(("musdb", ""))
    overlays += [
        (f"architectures.{first.get('arch')}", ""),
        (f"profiles.{first.get('profile')}", ""),
    ]
    cfg = ctx.config(path, overlays=overlays)
    for group in ("profiles", "architectures", "musdb"):
        cfg.pop(group, None)
    return cfg


def musdb_validation_tracks() -> list[str]:
    """The official MUSDB18 validation tracks (14 of the 100 training tracks), from the
    ``musdb`` package's ``configs/mus.yaml``."""
    import musdb
    import yaml

    conf = Path(musdb.__file__).parent / "configs" / "mus.yaml"
    return [str(t) for t in yaml.safe_load(conf.read_text())["validation_tracks"]]


def split_musdb_hq(musdb_dir: str | os.PathLike, root: str | os.PathLike) -> dict[str, int]:
    """Lay out a MUSDB18-HQ folder (``train/<track>/*.wav``, ``test/<track>/*.wav``) as
    ``root/{train,valid,test}/<track>`` symbolic links, with the official validation tracks
    moved out of train. Nothing is copied.

    Raises:
        WbError: not a MUSDB18-HQ folder (no ``train``/``test`` with the 4 stems), or a
            validation track missing.
    """
    from separation.data import find_tracks

    src, root = Path(musdb_dir), Path(root)
    for sub in ("train", "test"):
        find_tracks(src, sub, list(SOURCES_4), need_mixture=True)  # checks the layout
    valid = set(musdb_validation_tracks())
    names = {p.name for p in (src / "train").iterdir() if p.is_dir()}
    missing = sorted(valid - names)
    if missing:
        raise WbError(f"{src}/train: validation track(s) missing: {', '.join(missing[:3])} ...")
    counts = {}
    for split in ("train", "valid", "test"):
        sub = src / MUSDB_SPLITS[split]
        tracks = sorted(p for p in sub.iterdir() if p.is_dir() and not p.name.startswith("."))
        if split != "test":
            tracks = [t for t in tracks if (t.name in valid) == (split == "valid")]
        (root / split).mkdir(parents=True, exist_ok=True)
        for t in tracks:
            link = root / split / t.name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(t.resolve(), target_is_directory=True)
        counts[split] = len(tracks)
    return counts


def decode_musdb(musdb_dir: str | os.PathLike, root: str | os.PathLike,
                 quiet: bool | None = None) -> dict[str, int]:  # fmt: skip
    """Decode MUSDB18 ``.stem.mp4`` files (the ``musdb``/``stempeg`` packages, ffmpeg) into
    ``root/{train,valid,test}/<track>/{mixture,vocals,drums,bass,other}.wav`` (44.1 kHz
    stereo, 16-bit), official validation split; tracks already decoded are kept.

    Raises:
        WbError: no MUSDB18 tracks in ``musdb_dir``.
    """
    import musdb
    import soundfile as sf

    from wb.progress import progress
    from wb.runs import temp_dir

    jobs = []
    for split, (subset, part) in {"train": ("train", "train"), "valid": ("train", "valid"),
                                  "test": ("test", None)}.items():  # fmt: skip
        db = musdb.DB(root=str(musdb_dir), subsets=subset, split=part)
        jobs += [(split, t) for t in db.tracks]
    if not jobs:
        raise WbError(f"{musdb_dir}: no MUSDB18 .stem.mp4 tracks (train/, test/)")
    counts: dict[str, int] = {}
    for split, track in progress(jobs, desc="decoding MUSDB18", unit="track", quiet=quiet):
        dest = Path(root) / split / track.name
        counts[split] = counts.get(split, 0) + 1
        if all((dest / f"{s}.wav").is_file() for s in ("mixture", *SOURCES_4)):
            continue
        tmp = temp_dir(dest, "tmp")
        try:
            sf.write(tmp / "mixture.wav", track.audio, track.rate, subtype="PCM_16")
            for s in SOURCES_4:
                sf.write(tmp / f"{s}.wav", track.targets[s].audio, track.rate, subtype="PCM_16")
            os.replace(tmp, dest)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return counts


def musdb_preview_url() -> str:
    """The URL of MUSDB18's 7-second previews, as the ``musdb`` package knows it
    (``configs/mus.yaml``, ``sample-url``)."""
    import musdb
    import yaml

    conf = Path(musdb.__file__).parent / "configs" / "mus.yaml"
    return str(yaml.safe_load(conf.read_text())["sample-url"])


def download_musdb_previews(dest: str | os.PathLike, sha256: str | None = None,
                            url: str | None = None, quiet: bool | None = None) -> Path:  # fmt: skip
    """Fetch and unpack MUSDB18's 7-second previews (144 ``.stem.mp4`` files, about 100 MB)
    into ``dest`` (``train/``, ``test/``), through :func:`wb.download.download` (resumable,
    verified) and :func:`wb.download.extract` (safe, all or nothing). The publisher gives no
    checksum, so the first run reports the archive's SHA-256 to pass back as ``--sha256``.

    Raises:
        DownloadError: HTTP error, checksum mismatch, or no checksum given.
    """
    from wb.download import download, extract
    from wb.paths import cache_root

    dest = Path(dest)
    if (dest / "train").is_dir() and (dest / "test").is_dir():
        return dest
    url = url or musdb_preview_url()
    archive = cache_root() / "downloads" / Path(url).name
    download(url, archive, sha256, progress=not quiet)
    return extract(archive, dest, strip_top=True)


def prepare(ctx: StageContext) -> None:
    """Make ``data.root`` from ``data.source`` (see the module doc)."""
    from wb.config import save_yaml

    cfg = resolve(ctx)
    data = cfg["data"]
    source = data.get("source", "synthetic")
    root = Path(data["root"])
    if source == "synthetic":
        from music.chorales.prepare import resolve_heldout
        from music.songs import prepare_songs

        heldout = resolve_heldout(data["heldout"])
        if not heldout.is_file():
            heldout = root / "heldout_fallback.txt"
            root.mkdir(parents=True, exist_ok=True)
            heldout.write_text("bach/bwv255\nbach/bwv256\n")
            click.echo(f"note: {data['heldout']} not found; held out: {heldout}")
        counts = prepare_songs(root, int(data["sample_rate"]), data.get("songs"),
                               data.get("max_seconds"), int(data.get("seed", 0)),
                               heldout=heldout, quiet=ctx.quiet)  # fmt: skip
        click.echo(f"synthetic songs (pipeline tests only) in {root}: {counts}")
    elif source in ("musdb18hq", "musdb18"):
        if ctx.args.get("download"):
            if source != "musdb18":
                raise click.UsageError("--download fetches MUSDB18's previews: --source musdb18")
            data["musdb"] = data.get("musdb") or "data/musdb18_7s"
            download_musdb_previews(data["musdb"], ctx.args.get("sha256"), quiet=ctx.quiet)
        if not data.get("musdb"):
            raise click.UsageError(f"--source {source} needs --musdb DIR (train/, test/)")
        if source == "musdb18hq":
            counts = split_musdb_hq(data["musdb"], root)
        else:
            counts = decode_musdb(data["musdb"], root, quiet=ctx.quiet)
        click.echo(f"{source} split in {root}: {counts}")
    else:
        raise ConfigError(f"data.source {source!r} unknown (synthetic, musdb18hq, musdb18)")
    save_yaml(cfg, root / "config.yml")


def train(ctx: StageContext) -> None:
    """Train on ``data.root`` (a custom stems folder works as it is: ``--root DIR``)."""
    from separation.stages import train_run

    train_run(ctx.args, lambda path: resolve(ctx, path), RUNS)


def anchor_table(sources: Sequence[str], ours: dict[str, Any] | None, synthetic: bool) -> str:
    """Markdown table of published MUSDB18 SDRs beside this evaluation's (per source)."""
    cols = [*sources, "mean"]
    lines = ["| system | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    four = set(sources) == set(SOURCES_4)  # the anchors' means are over these 4 stems
    for name, figures in ANCHORS:
        cells = [f"{figures[c]:.2f}" if c in figures and (four or c != "mean") else "-"
                 for c in cols]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if ours is not None:
        label = "this model (SYNTHETIC songs: not comparable)" if synthetic else "this model"
        cells = [
            f"{ours['sources'][c]['SDR']:.2f}" if c in ours["sources"] else
            (f"{ours['mean']['SDR']:.2f}" if c == "mean" else "-")
            for c in cols
        ]  # fmt: skip
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate(ctx: StageContext) -> None:
    """Separate every track of a split, write museval's JSON per track
    (``<run>/museval/<split>/<track>.json``) and ``metrics_<split>.json``, and print the
    per-source table (SDR/SIR/SAR/ISR: median over 1 s frames, then median over tracks, as
    SiSEC 2018) beside the published anchors.

    Raises:
        click.UsageError: both or neither of ``--run`` and ``--model``.
    """
    from separation.evaluate import evaluate as evaluate_model
    from separation.hub import load_separator

    args = ctx.args
    if bool(args["run"]) == bool(args["model"]):
        raise click.UsageError("give one of --run RUN or --model NAME_OR_FILE")
    cfg = resolve(ctx, Path(args["run"]) / "config.yml" if args["run"] else None)
    data = cfg["data"]
    split = args["split"]
    if args["run"]:
        run = Path(args["run"])
        model = run / "checkpoints" / "best.ckpt"
        out_dir = run
    else:
        model = args["model"]
        out_dir = Path("out") / "evaluate" / f"music_{Path(str(model)).stem}"
    separator = load_separator(model, device=args["device"])
    result = evaluate_model(
        separator, data["root"], split=split, out=out_dir / f"metrics_{split}.json",
        device=args["device"], max_tracks=args["max_tracks"], quiet=ctx.quiet,
        groups=data.get("groups") or None, museval_dir=out_dir / "museval" / split,
        title=f"{data['root']}/{split}",
    )  # fmt: skip
    synthetic = (Path(data["root"]) / "SYNTHETIC.txt").is_file()
    click.echo("")
    click.echo(anchor_table(list(separator.sources), result, synthetic))
    click.echo(f"museval JSON: {out_dir / 'museval' / split}/")
    if args["run"]:
        from wb.report import build_report

        click.echo(f"report: {build_report(args['run'])}")


def export(ctx: StageContext) -> None:
    """Write a self-describing model file (with test metrics when the run has them).

    Raises:
        click.UsageError: no ``--run``.
        WbError: as :func:`separation.stages.export_run`.
    """
    from separation.stages import export_run

    args = ctx.args
    if not args["run"]:
        raise click.UsageError("export needs --run <run folder>")
    export_run(args, resolve(ctx, Path(args["run"]) / "config.yml"), "model.pt")
