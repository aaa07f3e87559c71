"""Stage bodies shared by the separation recipes (``recipes.satb_separation``,
``recipes.music_separation``): train a run folder, average runs' weights, export its best
checkpoint."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from wb.errors import WbError
from wb.recipe import Option, StageContext

AVERAGE_OPTIONS = (
    Option("--runs", "comma-separated run folders to average (their checkpoints/best.ckpt)"),
    Option("--run", "the new run folder to write"),
)


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

    Returns:
        The model file written.

    Raises:
        WbError: ``--out`` is a folder or would overwrite the run's checkpoints, config, logs
            or metrics; as :func:`separation.export.export` (unreadable checkpoint, bad
            inference settings).
    """
    from separation.export import export as export_model
    from wb.runs import check_output, run_files

    run = Path(args["run"])
    metrics = run / "metrics_test.json"
    dest = check_output(args["out"] or run / default_name, run_files(run), "--out")
    out = export_model(
        run / "checkpoints" / "best.ckpt", dest, half=args["half"],
        metrics=metrics if metrics.is_file() else None, inference=cfg.get("inference"),
    )  # fmt: skip
    click.echo(f"model file: {out} ({out.stat().st_size / 2**20:.1f} MiB)")
    return out


def average_runs(members: Sequence[str | os.PathLike], run: str | os.PathLike) -> Path:
    """Write a new run folder whose ``checkpoints/best.ckpt`` holds the uniform average of
    the members' best weights (a "uniform soup", Wortsman et al. 2022).

    The members should be fine-tuned from one shared starting point (e.g. two warm starts
    from the same checkpoint with other seeds or learning rates); the average is then often
    better than each member. Choose it on the validation sets, like any run. The new folder
    gets the first member's ``config.yml`` (its ``inference:`` group is what ``evaluate
    --run`` and ``export --run`` use) and ``average.json`` (the members and their best
    validation SI-SDR); its checkpoint carries no optimizer state, so it is a starting point
    for ``train.init_from``, not for ``--resume``.

    Args:
        members: two or more run folders with ``checkpoints/best.ckpt`` of one architecture
            (same model, sources, sample rate, channels and constructor arguments).
        run: the new run folder (must not exist, or be empty).

    Returns:
        The new run folder.

    Raises:
        WbError: fewer than two members, a member given twice or without a best checkpoint
            or ``config.yml``, members of different architectures, or ``run`` not empty.
    """
    import shutil

    import torch

    from separation.export import best_score, read_checkpoint
    from wb.checkpoint import average_state_dicts
    from wb.runs import remove_stale_temps, temp_dir, write_json

    folders = [Path(m) for m in members]
    if len(folders) < 2:
        raise WbError("average needs at least two run folders (--runs A,B)")
    if len({f.resolve() for f in folders}) != len(folders):
        raise WbError("--runs names a run folder twice")
    out = Path(run)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise WbError(f"--run {out} exists and is not empty; choose a new run folder")
    same = ("model_name", "sources", "sample_rate", "audio_channels", "model_kwargs")
    checkpoints = []
    for folder in folders:
        for need in ("checkpoints/best.ckpt", "config.yml"):
            if not (folder / need).is_file():
                raise WbError(f"{folder}: no {need} (not a finished training run)")
        data = read_checkpoint(folder / "checkpoints" / "best.ckpt")
        if checkpoints:
            hp0, hp = checkpoints[0][1]["hyper_parameters"], data["hyper_parameters"]
            for key in same:
                if hp0[key] != hp[key]:
                    raise WbError(f"{folder}: {key} {hp[key]!r} differs from {folders[0]}'s")
        checkpoints.append((folder, data))
    try:
        state = average_state_dicts([data["state_dict"] for _, data in checkpoints])
    except WbError as exc:  # "model k" is the k-th of --runs
        raise WbError(f"--runs {','.join(map(str, folders))}: {exc}") from None
    payload = {
        "state_dict": state,
        "hyper_parameters": checkpoints[0][1]["hyper_parameters"],
        "averaged_from": [str(f / "checkpoints" / "best.ckpt") for f in folders],
    }
    summary = {
        "method": "uniform average of the members' best weights (Wortsman et al. 2022)",
        "members": [{"run": str(f), "best_val_sisdr": best_score(data)} for f, data in checkpoints],
    }
    # the whole folder is built next to its destination, then renamed into place: an
    # interrupted average leaves no half-written run (and a killed one's leftovers go here)
    remove_stale_temps(out, "partial")
    tmp = temp_dir(out, "partial")
    try:
        (tmp / "config.yml").write_text((folders[0] / "config.yml").read_text())
        write_json(tmp / "average.json", summary)
        (tmp / "checkpoints").mkdir()
        torch.save(payload, tmp / "checkpoints" / "best.ckpt")
        if out.is_dir():
            out.rmdir()  # empty, checked above
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    click.echo(f"run folder: {out} (the average of {len(folders)} runs' best weights)")
    return out


def average(ctx: StageContext) -> None:
    """Average the best weights of ``--runs`` into the new run folder ``--run``
    (:func:`separation.stages.average_runs`); score it with ``evaluate --run``.

    Raises:
        click.UsageError: ``--runs`` or ``--run`` missing.
    """
    args = ctx.args
    if not args["runs"] or not args["run"]:
        raise click.UsageError("average needs --runs A,B[,...] and --run <new run folder>")
    average_runs([r.strip() for r in args["runs"].split(",") if r.strip()], args["run"])
