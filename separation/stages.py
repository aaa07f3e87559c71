"""Stage bodies shared by the separation recipes (``recipes.satb_separation``,
``recipes.music_separation``): train a run folder, export its best checkpoint."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from wb.errors import WbError


def train_run(
    args: Mapping[str, Any],
    resolve: Callable[[str | os.PathLike | None], dict[str, Any]],
    runs: str | os.PathLike,
) -> Path:
    """Train into ``--run`` (default: a new timestamped folder under ``runs``), or continue it
    with ``--resume`` (its saved ``config.yml`` with ``--set`` on top), and print where the
    best checkpoint is.

    Args:
        args: the stage's options (``run``, ``resume``, ``devices``, ``num_nodes``).
        resolve: config resolver, given the run's ``config.yml`` when resuming, else ``None``.
        runs: parent folder of new runs.

    Returns:
        The run folder.

    Raises:
        WbError: ``--resume`` without ``--run``.
    """
    from separation.train import train as train_model
    from wb.runs import make_run_dir

    if args["resume"] and not args["run"]:
        raise WbError("--resume needs --run <run folder>")
    cfg = resolve(Path(args["run"]) / "config.yml" if args["resume"] else None)
    run = Path(args["run"]) if args["run"] else make_run_dir(runs)
    devices = args["devices"]
    devices = int(devices) if devices is not None and str(devices).isdigit() else devices
    result = train_model(cfg, run, resume=args["resume"], devices=devices,
                         num_nodes=args["num_nodes"])  # fmt: skip
    score = result["best_sisdr"]
    click.echo(f"run folder: {run}")
    click.echo(
        f"best checkpoint: {result['best']} (validation SI-SDR {score:.2f} dB)"
        if score is not None
        else f"last checkpoint: {result['last']}"
    )
    return run


def export_run(args: Mapping[str, Any], cfg: Mapping[str, Any], default_name: str) -> Path:
    """Export ``<run>/checkpoints/best.ckpt`` to ``--out`` (default ``<run>/<default_name>``)
    with the run's test metrics when it has them, and print the file's size.

    Args:
        args: the stage's options (``run``, given; ``out``, ``half``).
        cfg: the run's resolved config (its ``inference:`` group is stored in the file).
        default_name: file name inside the run folder when ``--out`` is not given.
    """
    from separation.export import export as export_model

    run = Path(args["run"])
    metrics = run / "metrics_test.json"
    out = export_model(
        run / "checkpoints" / "best.ckpt", args["out"] or run / default_name, half=args["half"],
        metrics=metrics if metrics.is_file() else None, inference=cfg.get("inference"),
    )  # fmt: skip
    click.echo(f"model file: {out} ({out.stat().st_size / 2**20:.1f} MiB)")
    return out
