"""Stage bodies of ``recipes/voice2midi``: prepare, train, evaluate, export.

The recipe module only wires these to :mod:`wb.recipe`; every stage reads the resolved
``conf.yml`` (``--set`` overrides on top).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from wb.config import check_int
from wb.errors import ConfigError, WbError
from wb.recipe import Option, StageContext

RUNS = "runs/voice2midi"
SHIPPED = Path(__file__).resolve().parent / "pretrained" / "voice2midi.pt"

PREPARE_OPTIONS = (
    Option("--root", "output folder of the synthetic sung lines", key="data.synthetic"),
    Option("--n-train", "training lines", key="data.n_train", type=int),
    Option("--jobs", "parallel render processes", key="data.jobs", type=int),
)
TRAIN_OPTIONS = (
    Option("--run", f"run folder (default {RUNS}/<timestamp>)"),
    Option("--resume", "continue the run from last.ckpt", is_flag=True),
    Option("--init-from", "warm start from a model file or checkpoint", key="train.init_from"),
)
EXPORT_OPTIONS = (
    Option("--run", "run folder (uses checkpoints/best.ckpt, or --checkpoint)"),
    Option("--checkpoint", "best | last", default="best", type=click.Choice(["best", "last"])),
    Option("--out", "model file (default <run>/voice2midi.pt)"),
    Option("--install", "install as the shipped model (wb transcribe's default)", is_flag=True),
    Option("--decoder", "decoder wb transcribe uses by default with this file",
           default="seq2seq", type=click.Choice(["seq2seq", "frames"])),
)  # fmt: skip


def prepare(ctx: StageContext) -> None:
    """Render the synthetic sung lines into ``data.synthetic`` (resumable).

    Raises:
        ConfigError: a count, rate, seed or job number that is not a whole number (or as
            :func:`music.transcription.voices.prepare_voices`).
        WbError: some lines failed to render.
    """
    from music.transcription.voices import prepare_voices

    d = ctx.config()["data"]
    keys = ("n_train", "n_valid", "n_test", "sample_rate", "seed", "jobs")
    summary = prepare_voices(d["synthetic"], **{k: check_int(d[k], f"data.{k}") for k in keys})
    click.echo(f"synthetic lines in {d['synthetic']}: {summary}")
    failed = sum(len(v) for v in (summary.get("failed") or {}).values())
    if failed:
        raise WbError(f"{failed} synthetic lines failed to render (rerun prepare to retry them)")


def train(ctx: StageContext) -> None:
    """Train into ``--run`` (default: a new folder under ``runs/voice2midi``), or continue it
    with ``--resume`` (its saved ``config.yml``, ``--set`` on top).

    Raises:
        WbError: ``--resume`` without ``--run``.
    """
    from music.transcription.train import train as train_model
    from wb.runs import make_run_dir

    args = ctx.args
    if args["resume"] and not args["run"]:
        raise WbError("--resume needs --run <run folder>")
    cfg = ctx.config(Path(args["run"]) / "config.yml" if args["resume"] else None)
    run = Path(args["run"]) if args["run"] else make_run_dir(RUNS)
    result = train_model(cfg, run, resume=args["resume"])
    click.echo(f"run folder: {run}")
    click.echo(f"best checkpoint: {result['best']} ({result['monitor']} {result['best_score']})")


def export(ctx: StageContext) -> None:
    """Write ``<run>/checkpoints/<best|last>.ckpt`` as a float16 model file; ``--install``
    also copies it to the shipped location.

    Raises:
        click.UsageError: no ``--run``.
        WbError: ``--out`` would overwrite the run's checkpoints, config, logs or metrics;
            the run's ``metrics.json`` is not valid JSON; an unreadable checkpoint.
    """
    from music.transcription.train import export as export_model
    from wb.runs import check_output, run_files

    args = ctx.args
    if not args["run"]:
        raise click.UsageError("export needs --run <run folder>")
    run = Path(args["run"])
    ckpt = run / "checkpoints" / f"{args['checkpoint']}.ckpt"
    metrics = run / "metrics.json"
    meta: dict = {"decoder": args["decoder"]}
    if metrics.is_file():
        import json

        try:
            meta["metrics"] = json.loads(metrics.read_text())
        except ValueError as exc:
            raise WbError(f"{metrics}: not valid JSON ({exc}); move it away to export") from None
    dest = check_output(args["out"] or run / "voice2midi.pt", run_files(run), "--out")
    out = export_model(ckpt, dest, meta)
    click.echo(f"model file: {out} ({out.stat().st_size / 2**20:.1f} MiB)")
    if args["install"]:
        install(out)
        click.echo(f"installed as {SHIPPED}")


def install(model_file: str | os.PathLike, dest: Path | None = None) -> Path:
    """Copy a model file to the shipped location and record its SHA-256 in the
    ``manifest.json`` beside it (checked by :func:`shipped_model` before every load)."""
    import shutil

    from wb.runs import atomic_write, file_digest, write_json

    dest = Path(dest or SHIPPED)
    atomic_write(dest, lambda tmp: shutil.copyfile(model_file, tmp))
    write_json(dest.with_name("manifest.json"), {dest.name: {"sha256": file_digest(dest)}})
    return dest


def shipped_model(path: Path | None = None) -> Path:
    """The shipped model file, after checking its SHA-256 against ``manifest.json``.

    Raises:
        WbError: the file is missing, unlisted, or its checksum differs.
    """
    import json

    from wb.runs import file_digest

    path = Path(path or SHIPPED)
    if not path.is_file():
        raise WbError(
            f"the shipped voice2midi model is not installed ({path}); train one with "
            "`python -m recipes.voice2midi train` or pass --model FILE or --model pyin"
        )
    try:
        want = json.loads(path.with_name("manifest.json").read_text())[path.name]["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        raise WbError(f"{path}: not listed with a SHA-256 in its manifest.json") from None
    if file_digest(path) != want:
        raise WbError(f"{path}: SHA-256 differs from its manifest.json (a damaged file?)")
    return path


EVALUATE_OPTIONS = (
    Option("--run", "evaluate this run folder's checkpoints/best.ckpt (exported on the fly)"),
    Option("--model", "model file (default: the shipped model)"),
    Option("--systems", "comma-separated systems (default: evaluate.systems)"),
    Option("--sets", "comma-separated: ssvd-valid, synthetic-test, synthetic-valid (chooses "
           "the default decoder), ssvd-dev (the data.ssvd_dev recordings)",
           default="ssvd-valid,synthetic-test"),
    Option("--out", "metrics JSON (default <run>/metrics.json with --run)"),
    Option("--max-files", "score only the first N files of each set", type=int),
)  # fmt: skip

#: Systems :func:`evaluate` knows: the model's decoders (the event decoder greedy and with beam
#: search, the frame head) and the two baselines.
SYSTEMS = ("seq2seq", "seq2seq-beam", "frames", "pyin", "basic-pitch")


def _eval_sets(cfg: dict, names: list[str]) -> dict[str, list[tuple[str, Path, Path]]]:
    from music.transcription import ssvd
    from music.transcription.data import find_pairs

    sets = {}
    keys = {"ssvd-valid": "ssvd", "ssvd-dev": "ssvd", "synthetic-test": "synthetic",
            "synthetic-valid": "synthetic"}  # fmt: skip
    for name in names:
        if name not in keys:
            raise WbError(f"unknown evaluation set {name!r} ({', '.join(keys)})")
        root = (cfg.get("data") or {}).get(keys[name])
        if not root:
            raise ConfigError(
                f"data.{keys[name]} is not set: set it, or leave {name} out of --sets"
            )
        if name == "ssvd-valid":
            sets[name] = ssvd.split(root)["valid"]
        elif name == "ssvd-dev":
            n_dev = int((cfg.get("data") or {}).get("ssvd_dev") or 0)
            if n_dev <= 0:
                raise ConfigError("ssvd-dev needs data.ssvd_dev > 0 (set it, or pass --run)")
            sets[name] = ssvd.split(root, dev=n_dev)["dev"]
        else:
            sets[name] = find_pairs(Path(root) / name.split("-")[1])
    return sets


def evaluate(ctx: StageContext) -> None:
    """Score every system on every set with mir_eval and print one table per set.

    Systems: ``seq2seq`` (the encoder-decoder, greedy), ``seq2seq-beam`` (beam search with
    ``evaluate.beam`` prefixes and GNMT ``evaluate.length_penalty``), ``frames`` (the frame
    head on the same encoder), ``pyin`` (librosa pYIN + note segmentation) and
    ``basic-pitch`` (when the package is installed; otherwise left out with a note). Scores
    are means over files of COnPOff / COnP / COn F1 (onset 50 ms, pitch 50 cents, offset
    20 %) and raw pitch / raw chroma accuracy (:mod:`music.transcription.metrics`).

    Writes ``{set: {"systems": {system: scores}, "files": {system: [per-file scores]}}}`` as
    JSON to ``--out`` (default ``<run>/metrics.json`` with ``--run``).

    Raises:
        WbError: unknown system or set; no model file.
    """
    import tempfile

    import numpy as np

    from music.transcription import baselines, metrics
    from music.transcription.inference import load_transcriber, transcribe_file
    from music.transcription.notes import read_notes
    from wb import audio as wb_audio
    from wb.progress import progress
    from wb.runs import write_json

    args = ctx.args
    cfg = ctx.config(Path(args["run"]) / "config.yml" if args["run"] else None)
    ev = cfg.get("evaluate") or {}
    systems = args["systems"].split(",") if args["systems"] else list(ev.get("systems", SYSTEMS))
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        raise WbError(f"unknown system {unknown[0]!r} (choose from {', '.join(SYSTEMS)})")
    try:
        beam, length_penalty = int(ev.get("beam", 4)), float(ev.get("length_penalty", 0.0))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"evaluate.beam / evaluate.length_penalty: {e}") from None
    if beam < 1 or length_penalty < 0:
        raise ConfigError(f"need evaluate.beam >= 1 and evaluate.length_penalty >= 0, got "
                          f"{beam}, {length_penalty}")  # fmt: skip
    if "basic-pitch" in systems and not baselines.basic_pitch_available():
        click.echo("basic-pitch is not installed: left out (pip install basic-pitch)", err=True)
        systems.remove("basic-pitch")
    model = None
    if {"seq2seq", "seq2seq-beam", "frames"} & set(systems):
        if args["run"]:
            from music.transcription.train import export as export_model

            with tempfile.TemporaryDirectory() as tmp:
                ckpt = Path(args["run"]) / "checkpoints" / "best.ckpt"
                model, _ = load_transcriber(export_model(ckpt, Path(tmp) / "m.pt"))
        else:
            path = Path(args["model"]) if args["model"] else shipped_model()
            if not path.is_file():
                raise WbError(f"{path}: no such model file")
            model, _ = load_transcriber(path)
        threads = (cfg.get("train") or {}).get("threads")
        if threads:
            import torch

            torch.set_num_threads(int(threads))
    results: dict = {}
    for set_name, pairs in _eval_sets(cfg, args["sets"].split(",")).items():
        pairs = pairs[: args["max_files"]] if args["max_files"] else pairs
        per: dict[str, list] = {s: [] for s in systems}
        for name, audio_path, notes_path in progress(pairs, desc=set_name, unit="file"):
            ref = read_notes(notes_path)
            x16 = None
            for system in systems:
                if system in ("seq2seq", "seq2seq-beam", "frames"):
                    est, _ = transcribe_file(
                        model, audio_path, system.split("-")[0], int(ev.get("batch_windows", 8)),
                        beam=beam if system == "seq2seq-beam" else 1,
                        length_penalty=length_penalty,
                    )  # fmt: skip
                elif system == "pyin":
                    if x16 is None:
                        x16 = wb_audio.load(audio_path, sample_rate=16000, channels=1)[0][0].numpy()
                    est = baselines.pyin_notes(np.asarray(x16), 16000)
                else:
                    est = baselines.basic_pitch_notes(audio_path)
                per[system].append({"file": name, **metrics.score(ref, est)})
        rows = {s: metrics.aggregate([{k: v for k, v in d.items() if k != "file"} for d in per[s]])
                for s in systems}  # fmt: skip
        results[set_name] = {"systems": rows, "files": per}
        click.echo(f"\n{set_name} ({len(pairs)} files; means over files)")
        click.echo(metrics.format_table(rows))
    out = args["out"] or (Path(args["run"]) / "metrics.json" if args["run"] else None)
    if out:
        write_json(out, results)
        click.echo(f"\nwrote {out}")
