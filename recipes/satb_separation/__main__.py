"""SATB chorale separation recipe: ``python -m recipes.satb_separation <stage> [options]``.

Every stage reads ``conf.yml`` (or ``--config``), applies ``--set key=value`` overrides
(:func:`wb.config.apply_overrides`; a key without a group prefix belongs to the stage's
group, so ``--set drop_fraction=0`` means ``data.drop_fraction=0`` for ``prepare``) and then
the stage's own options, saves the resolved config next to its outputs and calls library
code. Add a stage by writing ``add_<name>_args`` / ``<name>`` functions and registering them
in :data:`STAGES`.

Stages:
    prepare   render the Bach chorale data set (:func:`music.chorales.prepare_chorales`)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wb.config import apply_overrides, load_yaml, merge, save_yaml
from wb.errors import WbError

CONF = Path(__file__).with_name("conf.yml")
PROG = "python -m recipes.satb_separation"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line ``error: ...`` usage errors (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def resolve_config(
    args: argparse.Namespace, group: str, flags: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """conf.yml, then ``--set`` overrides, then non-``None`` stage options into ``group``.

    Args:
        args: parsed options with ``config`` (path) and ``set`` (list of ``key=value``).
        group: the stage's config group, e.g. ``"data"``.
        flags: ``{key in group: value}`` from the stage's own options; ``None`` values
            are left out.

    Returns:
        The resolved config mapping.

    Raises:
        ConfigError: unreadable config file, malformed or unknown override.
    """
    cfg = load_yaml(args.config)
    quick = cfg.pop("quick", None) or {}
    if getattr(args, "quick", False):
        cfg = merge(cfg, quick)
    cfg.setdefault(group, {})
    overrides = []
    for item in args.set:
        plus = "+" if item.startswith("+") else ""
        body = item[len(plus) :]
        if body.split("=", 1)[0].split(".", 1)[0] not in cfg:
            body = f"{group}.{body}"
        overrides.append(plus + body)
    cfg = apply_overrides(cfg, overrides)
    for key, value in (flags or {}).items():
        if value is not None:
            cfg[group][key] = value
    return cfg


# --------------------------------------------------------------------------------- prepare
def add_prepare_args(p: argparse.ArgumentParser) -> None:
    """Options of the ``prepare`` stage (each overrides the ``data:`` key of that name)."""
    p.add_argument("--root", help="output folder (data.root)")
    p.add_argument("--sample-rate", type=int, help="Hz, 8000..48000 (default 16000)")
    p.add_argument("--renditions", type=int, help="renditions per chorale")
    p.add_argument("--timbre", choices=("choir", "ensemble", "mixed"))
    p.add_argument("--seed", type=int, help="global seed")
    p.add_argument("--limit", type=int, help="only the first N works (sorted names)")
    p.add_argument("--pieces", help="comma-separated corpus names, e.g. bach/bwv255,bach/bwv256")
    p.add_argument("--splits", help="render only these splits, e.g. test or train,valid")
    p.add_argument("--jobs", type=int, help="worker processes (default: CPU count)")


def prepare(args: argparse.Namespace) -> int:
    """Render the chorale data set; saves the resolved config as ``<root>/config.yml``."""
    from music import chorales

    flags = {
        "root": args.root,
        "sample_rate": args.sample_rate,
        "renditions": args.renditions,
        "timbre": args.timbre,
        "seed": args.seed,
        "limit": args.limit,
        "pieces": args.pieces,
        "splits": args.splits,
        "jobs": args.jobs,
    }
    cfg = resolve_config(args, "data", flags)
    data = cfg["data"]
    chorales.check_prepare_kwargs(data)
    save_yaml(cfg, Path(data["root"]) / "config.yml")
    chorales.prepare_chorales(**data, quiet=args.quiet or None)
    return 0


# ----------------------------------------------------------------------------------- train
RUNS = Path("runs") / "satb_separation"


def add_train_args(p: argparse.ArgumentParser) -> None:
    """Options of the ``train`` stage."""
    p.add_argument("--root", help="chorale data root (data.root)")
    p.add_argument("--run", help=f"run folder (default {RUNS}/<timestamp>)")
    p.add_argument("--resume", action="store_true", help="continue the run from last.ckpt")
    p.add_argument("--devices", default="auto", help="Lightning devices (count, ids or auto)")
    p.add_argument("--num-nodes", type=int, default=1, help="Lightning num_nodes (DDP)")


def train(args: argparse.Namespace) -> int:
    """Train on ``data.root``; with ``--resume`` continue the run folder's last checkpoint.

    A resumed run uses the config saved in the run folder (``config.yml``), with ``--set``
    overrides applied on top (e.g. ``--set train.max_epochs=20`` to train longer).
    """
    from separation.train import train as train_model
    from wb.runs import make_run_dir

    if args.resume:
        if not args.run:
            raise WbError("--resume needs --run <run folder>")
        saved = Path(args.run) / "config.yml"
        args.config = str(saved)
    cfg = resolve_config(args, "train")
    if args.root:
        cfg["data"]["root"] = args.root
    run = Path(args.run) if args.run else make_run_dir(RUNS)
    devices = int(args.devices) if str(args.devices).isdigit() else args.devices
    result = train_model(cfg, run, resume=args.resume, devices=devices, num_nodes=args.num_nodes)
    score = result["best_sisdr"]
    print(f"run folder: {run}")
    print(
        f"best checkpoint: {result['best']} (validation SI-SDR {score:.2f} dB)"
        if score is not None
        else f"last checkpoint: {result['last']}"
    )
    return 0


# -------------------------------------------------------------------------------- evaluate
def add_evaluate_args(p: argparse.ArgumentParser) -> None:
    """Options of the ``evaluate`` stage."""
    src = p.add_mutually_exclusive_group()
    src.add_argument("--run", help="score this run folder's checkpoints/best.ckpt")
    src.add_argument("--model", help="model file, shipped name or Demucs name (default: satb)")
    p.add_argument("--root", help="chorale data root (data.root)")
    p.add_argument("--split", default="test", help="split to score (default test)")
    p.add_argument("--out", help="metrics.json path (default: <run>/metrics_<split>.json)")
    p.add_argument("--max-tracks", type=int, help="score only the first N tracks")
    p.add_argument("--no-bsseval", action="store_true", help="SI-SDR only (fast)")
    p.add_argument("--device", default="cpu", help="cpu | cuda")


def evaluate(args: argparse.Namespace) -> int:
    """Separate every track of a split and print/write BSSEval v4 + SI-SDR per voice."""
    from separation.evaluate import evaluate as evaluate_model

    if args.run:  # the run's own resolved config, not conf.yml
        args.config = str(Path(args.run) / "config.yml")
    cfg = resolve_config(args, "data")
    root = args.root or cfg["data"]["root"]
    if args.run:
        model = Path(args.run) / "checkpoints" / "best.ckpt"
        out = args.out or Path(args.run) / f"metrics_{args.split}.json"
    else:
        model = args.model or "satb"
        out = args.out or Path("out") / "evaluate" / f"{Path(str(model)).stem}_{args.split}.json"
    chunking = cfg.get("inference") or {} if args.run else {}  # model files carry their own
    evaluate_model(
        str(model),
        root,
        split=args.split,
        out=out,
        segment=chunking.get("segment"),
        overlap=chunking.get("overlap"),
        device=args.device,
        max_tracks=args.max_tracks,
        with_bsseval=not args.no_bsseval,
        quiet=args.quiet or None,
    )
    print(f"metrics: {out}")
    return 0


# ---------------------------------------------------------------------------------- export
def add_export_args(p: argparse.ArgumentParser) -> None:
    """Options of the ``export`` stage."""
    p.add_argument("--run", required=True, help="run folder (uses checkpoints/best.ckpt)")
    p.add_argument("--out", help="model file (default <run>/satb.pt)")
    p.add_argument("--half", action="store_true", help="store float16 weights (half the size)")
    p.add_argument("--install", action="store_true", help="install as the shipped `satb` model")


def export(args: argparse.Namespace) -> int:
    """Write a self-describing model file (with test metrics when the run has them)."""
    from separation.export import export as export_model
    from separation.export import install_pretrained

    run = Path(args.run)
    cfg = resolve_config(argparse.Namespace(config=run / "config.yml", set=args.set), "inference")
    metrics = run / "metrics_test.json"
    out = export_model(
        run / "checkpoints" / "best.ckpt",
        args.out or run / "satb.pt",
        half=args.half,
        metrics=metrics if metrics.is_file() else None,
        inference=cfg.get("inference"),
    )
    print(f"model file: {out} ({out.stat().st_size / 2**20:.1f} MiB)")
    if args.install:
        model = cfg["model"]
        rate, channels = (
            model["sample_rate"] / 1000,
            "mono" if model["audio_channels"] == 1 else "stereo",
        )
        description = f"{model['name']} SATB chorale separator ({rate:g} kHz, {channels})"
        dest = install_pretrained(out, "satb", description)
        print(f"installed: {dest}")
    return 0


# ------------------------------------------------------------------------------------ demo
DEMO_PIECES = "bach/bwv255,bach/bwv256"  # held out: never in train or valid


def add_demo_args(p: argparse.ArgumentParser) -> None:
    """Options of the ``demo`` stage."""
    p.add_argument("--out", default="out/demo", help="demo folder (default out/demo)")
    p.add_argument("--model", default="satb", help="model for wb separate (default: satb)")
    p.add_argument("--pieces", default=DEMO_PIECES, help="held-out works to render")


def demo(args: argparse.Namespace) -> int:
    """Render two held-out chorales, separate them with ``wb separate``, score each voice.

    Leaves ``<out>/data/test/<piece>/`` (mixture + reference stems, as rendered),
    ``<out>/separated/<piece>/<voice>.wav`` (estimates) and ``<out>/metrics.json``.
    """
    import shutil

    import torch

    from music import chorales
    from separation.evaluate import aggregate, format_table, track_metrics
    from wb import audio
    from wb.cli import main as wb_main
    from wb.runs import write_json

    out = Path(args.out)
    cfg = resolve_config(args, "data")
    data = {**cfg["data"], "root": str(out / "data"), "pieces": args.pieces, "splits": "test"}
    data.update(limit=None)
    if not chorales.resolve_heldout(data["heldout"]).is_file():
        # the demo pieces are held-out works by definition; without the shared list the
        # same-tune rule has nothing else to add for a render of just these pieces
        listed = out / "heldout_demo.txt"
        listed.parent.mkdir(parents=True, exist_ok=True)
        listed.write_text("\n".join(args.pieces.split(",")) + "\n")
        print(f"note: {data['heldout']} not found; using {listed}")
        data["heldout"] = str(listed)
    chorales.check_prepare_kwargs(data)
    print(f"1/3 rendering {args.pieces} (held-out chorales) into {out / 'data'}")
    chorales.prepare_chorales(**data, quiet=args.quiet or None)
    tracks = sorted(p for p in (out / "data" / "test").iterdir() if p.is_dir())
    inputs = out / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    for t in tracks:
        shutil.copyfile(t / "mixture.wav", inputs / f"{t.name}.wav")
    print(f"2/3 wb separate {inputs}/*.wav --model {args.model} --out {out / 'separated'}")
    argv = ["--quiet"] if args.quiet else []
    argv += ["separate", *map(str, sorted(inputs.glob("*.wav"))), "--model", args.model]
    code = wb_main([*argv, "--out", str(out / "separated")])
    if code != 0:
        raise WbError("wb separate failed (see the error above)")
    print("3/3 scoring the estimates against the rendered stems")
    sources = ["soprano", "alto", "tenor", "bass"]
    scored = []
    for t in tracks:
        ref = torch.stack([audio.load(t / f"{s}.wav")[0] for s in sources])
        est = torch.stack([audio.load(out / "separated" / t.name / f"{s}.wav")[0] for s in sources])
        mix, sr = audio.load(t / "mixture.wav")
        scored.append({"name": t.name, "metrics": track_metrics(ref, est, mix, sr, sources)})
    summary = {**aggregate(scored, sources), "n_tracks": len(scored), "tracks": scored}
    write_json(out / "metrics.json", summary)
    print(format_table(summary))
    print(f"mixtures: {inputs}  estimates: {out / 'separated'}  references: {out / 'data/test'}")
    return 0


# ---------------------------------------------------------------------------------- stages
@dataclass(frozen=True)
class Stage:
    """A recipe stage: its options, its function (returns the exit code) and a help line."""

    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    help: str


STAGES: dict[str, Stage] = {
    "prepare": Stage(add_prepare_args, prepare, "render the Bach chorale SATB data set"),
    "train": Stage(add_train_args, train, "train a separation model on the chorale data"),
    "evaluate": Stage(add_evaluate_args, evaluate, "BSSEval v4 + SI-SDR per voice on a split"),
    "export": Stage(add_export_args, export, "write a self-describing model file"),
    "demo": Stage(add_demo_args, demo, "render, separate and score two held-out chorales"),
}


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser: one sub-command per entry of :data:`STAGES`."""
    parser = _Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="stage", metavar="stage", parser_class=_Parser)
    sub.required = True
    for name, stage in STAGES.items():
        sp = sub.add_parser(name, help=stage.help, description=stage.help)
        sp.add_argument("--config", default=str(CONF), help="recipe config (default: conf.yml)")
        sp.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE", help="config override"
        )
        sp.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
        sp.add_argument(
            "--quick", action="store_true", help="CI-sized profile (conf.yml's quick: overlay)"
        )
        stage.add_arguments(sp)
        sp.set_defaults(stage_fn=stage.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a stage with ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    Errors print one ``error: ...`` line (``--debug``: a traceback): 1 for bad input or failed
    work, 2 for usage errors (see :func:`wb.cli.run_guarded`).
    """
    from wb.cli import restore_env, run_guarded

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]

    def run() -> int:
        parsed = build_parser().parse_args(args)
        if parsed.quiet:
            os.environ["WB_QUIET"] = "1"
        return int(parsed.stage_fn(parsed) or 0)

    with restore_env("WB_QUIET"):
        return run_guarded(run, debug)


if __name__ == "__main__":
    sys.exit(main())
