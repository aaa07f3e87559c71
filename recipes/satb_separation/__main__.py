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
    if args.resume:
        run = Path(args.run)
    else:
        run = make_run_dir(RUNS) if not args.run else Path(args.run)
    devices = int(args.devices) if str(args.devices).isdigit() else args.devices
    if args.quiet:
        os.environ["WB_QUIET"] = "1"
    result = train_model(cfg, run, resume=args.resume, devices=devices, num_nodes=args.num_nodes)
    score = result["best_sisdr"]
    print(f"run folder: {run}")
    print(
        f"best checkpoint: {result['best']} (validation SI-SDR {score:.2f} dB)"
        if score is not None
        else f"last checkpoint: {result['last']}"
    )
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

    User errors (:class:`~wb.errors.WbError`) print one ``error: ...`` line and return 1;
    usage errors return 2. No traceback is shown for either.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
        return int(args.stage_fn(args) or 0)
    except WbError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
