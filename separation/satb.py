"""The SATB chorale separation recipe's stages (``python -m recipes.satb_separation``).

Each stage receives a :class:`wb.recipe.StageContext`, resolves the recipe config through it,
saves what it resolved next to its outputs and calls library code:

=========  ==========================================================================
prepare    render the Bach chorale data set (:func:`music.chorales.prepare_chorales`)
train      train a separation model (:func:`separation.train.train`)
evaluate   BSSEval v4 + SI-SDR per voice on a split (:func:`separation.evaluate.evaluate`)
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
    Option("--root", "chorale data root", key="data.root"),
    Option("--split", "split to score", default="test"),
    Option("--out", "metrics.json path (default: <run>/metrics_<split>.json)"),
    Option("--max-tracks", "score only the first N tracks", type=int),
    Option("--no-bsseval", "SI-SDR only (fast)", is_flag=True),
    Option("--device", "cpu | cuda", default="cpu"),
)
EXPORT_OPTIONS = (
    Option("--run", "run folder (uses checkpoints/best.ckpt)"),
    Option("--out", "model file (default <run>/satb.pt)"),
    Option("--half", "store float16 weights (half the size)", is_flag=True),
    Option("--install", "install as the shipped `satb` model", is_flag=True),
)
DEMO_OPTIONS = (
    Option("--out", "demo folder", default="out/demo"),
    Option("--model", "model for wb separate", default="satb"),
    Option("--pieces", "held-out works to render", default=DEMO_PIECES),
)


def prepare(ctx: StageContext) -> None:
    """Render the chorale data set; saves the resolved config as ``<root>/config.yml``."""
    from music import chorales
    from wb.config import save_yaml

    cfg = ctx.config()
    data = cfg["data"]
    chorales.check_prepare_kwargs(data)
    save_yaml(cfg, Path(data["root"]) / "config.yml")
    chorales.prepare_chorales(**data, quiet=ctx.quiet)


def train(ctx: StageContext) -> None:
    """Train on ``data.root``; with ``--resume`` continue the run folder's last checkpoint.

    A resumed run uses the config saved in the run folder (``config.yml``), with ``--set``
    overrides applied on top (e.g. ``--set train.epochs=20`` to train longer).

    Raises:
        WbError: ``--resume`` without ``--run``.
    """
    from separation.train import train as train_model
    from wb.runs import make_run_dir

    args = ctx.args
    if args["resume"] and not args["run"]:
        raise WbError("--resume needs --run <run folder>")
    cfg = ctx.config(Path(args["run"]) / "config.yml" if args["resume"] else None)
    run = Path(args["run"]) if args["run"] else make_run_dir(RUNS)
    devices = args["devices"]
    devices = int(devices) if devices is not None and str(devices).isdigit() else devices
    result = train_model(
        cfg, run, resume=args["resume"], devices=devices, num_nodes=args["num_nodes"]
    )
    score = result["best_sisdr"]
    click.echo(f"run folder: {run}")
    click.echo(
        f"best checkpoint: {result['best']} (validation SI-SDR {score:.2f} dB)"
        if score is not None
        else f"last checkpoint: {result['last']}"
    )


def evaluate(ctx: StageContext) -> None:
    """Separate every track of a split and print/write BSSEval v4 + SI-SDR per voice.

    Raises:
        click.UsageError: both ``--run`` and ``--model``.
    """
    from separation.evaluate import evaluate as evaluate_model

    args = ctx.args
    if args["run"] and args["model"]:
        raise click.UsageError("--run and --model are mutually exclusive")
    # a run is scored with its own resolved config, not conf.yml
    cfg = ctx.config(Path(args["run"]) / "config.yml" if args["run"] else None)
    if args["run"]:
        model = Path(args["run"]) / "checkpoints" / "best.ckpt"
        out = args["out"] or Path(args["run"]) / f"metrics_{args['split']}.json"
    else:
        model = args["model"] or "satb"
        name = f"{Path(str(model)).stem}_{args['split']}.json"
        out = args["out"] or Path("out") / "evaluate" / name
    chunking = (cfg.get("inference") or {}) if args["run"] else {}  # model files carry their own
    evaluate_model(
        str(model), cfg["data"]["root"], split=args["split"], out=out,
        segment=chunking.get("segment"), overlap=chunking.get("overlap"), device=args["device"],
        max_tracks=args["max_tracks"], with_bsseval=not args["no_bsseval"], quiet=ctx.quiet,
    )  # fmt: skip
    click.echo(f"metrics: {out}")


def export(ctx: StageContext) -> None:
    """Write a self-describing model file (with test metrics when the run has them).

    Raises:
        click.UsageError: no ``--run``.
    """
    from separation.export import export as export_model
    from separation.hub import install_pretrained

    args = ctx.args
    if not args["run"]:
        raise click.UsageError("export needs --run <run folder>")
    run = Path(args["run"])
    cfg = ctx.config(run / "config.yml")
    metrics = run / "metrics_test.json"
    out = export_model(
        run / "checkpoints" / "best.ckpt", args["out"] or run / "satb.pt", half=args["half"],
        metrics=metrics if metrics.is_file() else None, inference=cfg.get("inference"),
    )  # fmt: skip
    click.echo(f"model file: {out} ({out.stat().st_size / 2**20:.1f} MiB)")
    if args["install"]:
        model = cfg["model"]
        channels = "mono" if model["audio_channels"] == 1 else "stereo"
        description = (
            f"{model['name']} SATB chorale separator ({model['sample_rate'] / 1000:g} kHz, "
            f"{channels})"
        )
        click.echo(f"installed: {install_pretrained(out, 'satb', description)}")


def demo(ctx: StageContext) -> None:
    """Render two held-out chorales, separate them with ``wb separate``, score each voice.

    Leaves ``<out>/data/test/<piece>/`` (mixture + reference stems, as rendered),
    ``<out>/separated/<piece>/<voice>.wav`` (estimates) and ``<out>/metrics.json``.

    Raises:
        WbError: rendering or ``wb separate`` failed.
    """
    import shutil

    import torch

    from music import chorales
    from separation.evaluate import aggregate, format_table, track_metrics
    from wb import audio
    from wb.cli import main as wb_main
    from wb.runs import write_json

    args = ctx.args
    out = Path(args["out"])
    cfg = ctx.config()
    data = {**cfg["data"], "root": str(out / "data"), "pieces": args["pieces"], "splits": "test"}
    data.update(limit=None)
    if not chorales.resolve_heldout(data["heldout"]).is_file():
        # the demo pieces are held-out works by definition; without the shared list the
        # same-tune rule has nothing else to add for a render of just these pieces
        listed = out / "heldout_demo.txt"
        listed.parent.mkdir(parents=True, exist_ok=True)
        listed.write_text("\n".join(args["pieces"].split(",")) + "\n")
        click.echo(f"note: {data['heldout']} not found; using {listed}")
        data["heldout"] = str(listed)
    chorales.check_prepare_kwargs(data)
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
    scored = []
    for t in tracks:
        ref = torch.stack([audio.load(t / f"{s}.wav")[0] for s in sources])
        est = torch.stack([audio.load(out / "separated" / t.name / f"{s}.wav")[0] for s in sources])
        mix, sr = audio.load(t / "mixture.wav")
        scored.append({"name": t.name, "metrics": track_metrics(ref, est, mix, sr, sources)})
    summary = {**aggregate(scored, sources), "n_tracks": len(scored), "tracks": scored}
    write_json(out / "metrics.json", summary)
    click.echo(format_table(summary))
    click.echo(
        f"mixtures: {inputs}  estimates: {out / 'separated'}  references: {out / 'data/test'}"
    )


__all__ = [
    "DEMO_OPTIONS", "EVALUATE_OPTIONS", "EXPORT_OPTIONS", "PREPARE_OPTIONS", "TRAIN_OPTIONS",
    "demo", "evaluate", "export", "prepare", "train",
]  # fmt: skip
