"""The SATB chorale separation recipe's stages (``python -m recipes.satb_separation``).

Each stage receives a :class:`wb.recipe.StageContext`, resolves the recipe config through it,
saves what it resolved next to its outputs and calls library code:

=========  ==========================================================================
prepare    render the Bach chorale data set (:func:`music.chorales.prepare_chorales`)
train      train a separation model (:func:`separation.train.train`)
evaluate   BSSEval v4 + SI-SDR per voice on a split (:func:`separation.evaluate.evaluate`)
average    average the best weights of runs (:func:`separation.stages.average_runs`)
export     write a self-describing model file (:func:`separation.export.export`)
demo       render two held-out chorales, ``wb separate`` them, score every voice
=========  ==========================================================================
"""

from __future__ import annotations

from pathlib import Path

import click

from music.options import PREPARE_OPTIONS
from wb.errors import WbError
from wb.recipe import Option, StageContext

RUNS = Path("runs") / "satb_separation"
DEMO_PIECES = "bach/bwv255,bach/bwv256"  # held out: never in train or valid

TRAIN_OPTIONS = (
    Option("--root", "chorale data root", key="data.root"),
    Option("--run", f"run folder (default {RUNS}/<timestamp>)"),
    Option("--resume", "continue the run from last.ckpt", is_flag=True),
    Option("--devices", "Lightning devices: count, ids or auto (default: train.devices)"),
    Option("--num-nodes", "Lightning num_nodes, DDP (default: train.num_nodes)", type=int),
)
EVALUATE_OPTIONS = (
    Option("--run", "score this run folder's checkpoints/best.ckpt"),
    Option("--model", "model file, shipped name or Demucs name (default: satb)"),
    Option("--root", "score only this data root (default: data.root and unseen.root)"),
    Option("--split", "split to score", default="test"),
    Option("--out", "metrics.json path, one root only (default: <run>/metrics_<split>.json; "
                    "for another --root, ..._<split>_<root folder name>.json)"),
    Option("--max-tracks", "score only the first N tracks", type=click.IntRange(min=1)),
    Option("--no-bsseval", "SI-SDR only (fast)", is_flag=True),
    Option("--rate", "data: full band as wb separate | model: the model's rate",
           key="evaluate.rate", type=click.Choice(["data", "model"])),
    Option("--no-oracle", "skip the oracle ideal-ratio-mask ceiling", is_flag=True),
    Option("--device", "cpu | cuda", default="cpu"),
)  # fmt: skip
EXPORT_OPTIONS = (
    Option("--run", "run folder (uses checkpoints/best.ckpt)"),
    Option("--out", "model file (default <run>/satb.pt)"),
    Option("--half", "store float16 weights (half the size)", is_flag=True),
    Option("--install", "install as the shipped `satb` model", is_flag=True),
)
SATB_PREPARE_OPTIONS = (
    *PREPARE_OPTIONS,
    Option("--unseen", "render the unseen-sound-font condition (the unseen: overlay)",
           is_flag=True),
)  # fmt: skip
DEMO_OPTIONS = (
    Option("--out", "demo folder", default="out/demo"),
    Option("--model", "model for wb separate", default="satb"),
    Option("--pieces", "held-out works to render", default=DEMO_PIECES),
)


def unseen_data(cfg: dict) -> dict:
    """The ``data:`` group with the ``unseen:`` overlay (the unseen-sound-font condition).

    A config without an ``unseen:`` group (a run folder saved before it existed) takes the
    recipe's (``conf.yml``).
    """
    unseen = cfg.get("unseen")
    if unseen is None:
        from wb.config import load_yaml

        unseen = load_yaml(Path(__file__).resolve().parents[1] / "recipes" / "satb_separation"
                           / "conf.yml").get("unseen") or {}  # fmt: skip
    if not unseen.get("root"):
        raise WbError("no unseen: group with a root in the config (the unseen-sound-font data)")
    return {**cfg["data"], **unseen}


def prepare(ctx: StageContext) -> None:
    """Render the chorale data set (with ``--unseen``, the unseen-sound-font condition);
    saves the resolved config as ``<root>/config.yml``."""
    from music import chorales
    from wb.config import save_yaml

    cfg = ctx.config(overlay=("unseen", "data") if ctx.args["unseen"] else None)
    data = cfg["data"]
    chorales.check_prepare(data)  # FluidSynth, sound fonts, held-out list: before any write
    save_yaml(cfg, Path(data["root"]) / "config.yml")
    chorales.prepare_chorales(**data, quiet=ctx.quiet)


def train(ctx: StageContext) -> None:
    """Train on ``data.root``; with ``--resume`` continue the run folder's last checkpoint.

    A resumed run uses the config saved in the run folder (``config.yml``), with ``--set``
    overrides applied on top (e.g. ``--set train.epochs=20`` to train longer).

    Raises:
        WbError: ``--resume`` without ``--run``.
    """
    from separation.stages import train_run

    train_run(ctx.args, ctx.config, RUNS)


CONDITIONS = {"": "in-domain", "_unseen": "unseen sound font"}


def root_suffix(root: str, cfg: dict, unseen: str | None) -> str:
    """The metrics-file suffix of a data root scored with ``evaluate --root``.

    Args:
        root: the data root given to ``--root`` (relative to the working directory or
            absolute).
        cfg: the resolved config; its ``data.root`` (if any) is the in-domain condition.
        unseen: the unseen condition's root (``unseen.root``), or ``None``.

    Returns:
        ``""`` for ``data.root``, ``"_unseen"`` for the unseen root, else ``"_<folder name>"``
        (``"_<folder name>_root"`` for a folder itself named ``unseen``), so that scoring
        another data set (e.g. ``data/chorales_bach10``) never overwrites the two
        conditions' files. Two other roots with the same folder name share a file: give
        ``--out`` to keep them apart.
    """
    resolved = Path(root).resolve()
    data_root = (cfg.get("data") or {}).get("root")
    if data_root and resolved == Path(data_root).resolve():
        return ""
    if unseen and resolved == Path(unseen).resolve():
        return "_unseen"
    return f"_{resolved.name}_root" if resolved.name == "unseen" else f"_{resolved.name}"


def evaluate(ctx: StageContext) -> None:
    """Separate every track of a split and print/write BSSEval v4 + SI-SDR per voice, with the
    oracle ideal-ratio-mask ceiling: one table for the in-domain data (``data.root``) and one
    for the unseen sound font (``unseen.root``), or one for ``--root``.

    Metrics go to ``<run>/metrics_<split>[_unseen].json`` (``--run``) or
    ``out/evaluate/<model>_<split>[_unseen].json``; a ``--root`` other than the two
    conditions' adds ``_<folder name>`` (:func:`root_suffix`), unless ``--out`` names the file.

    Raises:
        click.UsageError: both ``--run`` and ``--model``; ``--out`` without ``--root``.
        WbError: a condition's split is not rendered (the message gives the command); no
            ``unseen:`` root in the config (only without ``--root``); ``--out`` would
            overwrite the model or the run's checkpoints or config.
    """
    from separation.evaluate import evaluate as evaluate_model
    from separation.hub import load_separator
    from wb.runs import check_output, run_files

    args = ctx.args
    if args["run"] and args["model"]:
        raise click.UsageError("--run and --model are mutually exclusive")
    if args["out"] and not args["root"]:
        raise click.UsageError("--out names one metrics file: give --root too")
    # a run is scored with its own resolved config, not conf.yml
    cfg = ctx.config(Path(args["run"]) / "config.yml" if args["run"] else None)
    split = args["split"]
    if args["run"]:
        model = Path(args["run"]) / "checkpoints" / "best.ckpt"
        stem = Path(args["run"]) / f"metrics_{split}"
    else:
        model = args["model"] or "satb"
        stem = Path("out") / "evaluate" / f"{Path(str(model)).stem}_{split}"
    separator = load_separator(str(model), device=args["device"])
    if args["root"]:
        try:
            unseen = unseen_data(cfg)["root"]
        except WbError:  # no unseen condition: --root alone is still fine
            unseen = None
        out = args["out"] or f"{stem}{root_suffix(args['root'], cfg, unseen)}.json"
        if args["out"]:  # never the model or the run it scores
            model_file = separator.origin.get("path") or model
            kept = [*(run_files(args["run"]) if args["run"] else ()), str(model_file)]
            check_output(out, kept, "--out")
        conditions = [(Path(args["root"]).name, args["root"], out)]
    else:
        unseen = unseen_data(cfg)["root"]
        conditions = [
            (CONDITIONS[""], cfg["data"]["root"], f"{stem}.json"),
            (f"{CONDITIONS['_unseen']} ({unseen})", unseen, f"{stem}_unseen.json"),
        ]
        hints = ("prepare", "prepare --unseen")
        for (_, root, _), hint in zip(conditions, hints, strict=True):
            if not (Path(root) / split).is_dir():
                raise WbError(
                    f"{root}/{split} is not rendered; run `python -m recipes.satb_separation "
                    f"{hint}` first (or score one data set with --root)"
                )
    chunking = (cfg.get("inference") or {}) if args["run"] else {}  # model files carry their own
    settings = cfg.get("evaluate") or {}
    for title, root, out in conditions:
        evaluate_model(
            separator, root, split=split, out=out, segment=chunking.get("segment"),
            overlap=chunking.get("overlap"), postfilter=settings.get("postfilter"),
            device=args["device"],
            max_tracks=args["max_tracks"], with_bsseval=not args["no_bsseval"], quiet=ctx.quiet,
            rate=settings.get("rate", "data"),
            oracle=bool(settings.get("oracle", True)) and not args["no_oracle"],
            title=f"{title}: {root}/{split}",
        )  # fmt: skip
        click.echo(f"metrics: {out}")
    if args["run"]:
        from wb.report import build_report

        click.echo(f"report: {build_report(args['run'])}")


def export(ctx: StageContext) -> None:
    """Write a self-describing model file (with test metrics when the run has them).

    Raises:
        click.UsageError: no ``--run``.
        WbError: as :func:`separation.stages.export_run`.
    """
    from separation.hub import install_pretrained
    from separation.stages import export_run

    args = ctx.args
    if not args["run"]:
        raise click.UsageError("export needs --run <run folder>")
    cfg = ctx.config(Path(args["run"]) / "config.yml")
    out = export_run(args, cfg, "satb.pt")
    if args["install"]:
        model = cfg["model"]
        channels = "mono" if model["audio_channels"] == 1 else "stereo"
        description = (
            f"{model['name']} SATB chorale separator ({model['sample_rate'] / 1000:g} kHz, "
            f"{channels})"
        )
        click.echo(f"installed: {install_pretrained(out, 'satb', description)}")


def demo(ctx: StageContext) -> None:
    """Render two held-out chorales twice, in the training conditions (``data:``) and with the
    unseen sound font (``unseen:``), separate them with ``wb separate`` and score each voice:
    one table per condition, each with the oracle ideal-ratio-mask ceiling.

    Leaves, per condition ``in_domain`` and ``unseen``: ``<out>/<condition>/data/test/<piece>/``
    (mixture + reference stems, as rendered), ``<out>/<condition>/separated/<piece>/<voice>.wav``
    (estimates) and ``<out>/<condition>/metrics.json``.

    Raises:
        WbError: rendering or ``wb separate`` failed.
    """
    from music import chorales

    args = ctx.args
    out = Path(args["out"])
    cfg = ctx.config()
    heldout = cfg["data"]["heldout"]
    if not chorales.resolve_heldout(heldout).is_file():
        # the demo pieces are held-out works by definition; without the shared list the
        # same-tune rule has nothing else to add for a render of just these pieces
        listed = out / "heldout_demo.txt"
        listed.parent.mkdir(parents=True, exist_ok=True)
        listed.write_text("\n".join(args["pieces"].split(",")) + "\n")
        click.echo(f"note: {heldout} not found; using {listed}")
        heldout = str(listed)
    for key, data, title in (
        ("in_domain", cfg["data"], "in-domain (training sound fonts)"),
        ("unseen", unseen_data(cfg), "unseen sound font"),
    ):
        data = {**data, "root": str(out / key / "data"), "pieces": args["pieces"],
                "splits": "test", "limit": None, "heldout": heldout, "renditions": 1}  # fmt: skip
        _demo_condition(ctx, data, out / key, title)


def _demo_condition(ctx: StageContext, data: dict, out: Path, title: str) -> None:
    import shutil

    import torch

    from music import chorales
    from separation.evaluate import aggregate, format_table, oracle_irm, track_metrics
    from wb import audio
    from wb.cli import main as wb_main
    from wb.runs import write_json

    args = ctx.args
    chorales.check_prepare_kwargs(data)
    click.echo(f"== {title}")
    click.echo(f"1/3 rendering {args['pieces']} (held-out chorales) into {out / 'data'}")
    chorales.prepare_chorales(**data, quiet=ctx.quiet)
    tracks = sorted(p for p in (out / "data" / "test").iterdir() if p.is_dir())
    inputs = out / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    for t in tracks:
        shutil.copyfile(t / "mixture.wav", inputs / f"{t.name}.wav")
    click.echo(f"2/3 wb separate {inputs}/*.wav --model {args['model']} --out {out / 'separated'}")
    argv = ["--quiet"] if ctx.quiet else []
    argv += ["separate", *map(str, sorted(inputs.glob("*.wav"))), "--model", args["model"]]
    if wb_main([*argv, "--out", str(out / "separated")]) != 0:
        raise WbError("wb separate failed (see the error above)")
    click.echo("3/3 scoring the estimates against the rendered stems")
    sources = ["soprano", "alto", "tenor", "bass"]
    scored, oracle = [], []
    for t in tracks:
        ref = torch.stack([audio.load(t / f"{s}.wav")[0] for s in sources])
        est = torch.stack([audio.load(out / "separated" / t.name / f"{s}.wav")[0] for s in sources])
        mix, sr = audio.load(t / "mixture.wav")
        scored.append({"name": t.name, "metrics": track_metrics(ref, est, mix, sr, sources)})
        irm = track_metrics(ref, oracle_irm(ref, sr), mix, sr, sources, with_bsseval=False)
        oracle.append({"name": t.name, "metrics": irm})
    summary = {
        **aggregate(scored, sources), "oracle": aggregate(oracle, sources),
        "n_tracks": len(scored), "sample_rate": sr, "rate": "data", "tracks": scored,
    }  # fmt: skip
    write_json(out / "metrics.json", summary)
    click.echo(f"\n{title}: {len(scored)} held-out chorales")
    click.echo(format_table(summary))
    click.echo(
        f"mixtures: {inputs}  estimates: {out / 'separated'}  references: {out / 'data/test'}\n"
    )


__all__ = [
    "DEMO_OPTIONS", "EVALUATE_OPTIONS", "EXPORT_OPTIONS", "PREPARE_OPTIONS",
    "SATB_PREPARE_OPTIONS", "TRAIN_OPTIONS", "unseen_data",
    "demo", "evaluate", "export", "prepare", "train",
]  # fmt: skip
