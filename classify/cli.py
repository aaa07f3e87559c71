"""``wb classify``: cross-validate a classifier on a dataset, or apply a trained one.

``wb classify --dataset fsdd [--model cnn] [--protocol loso] [--folds all] [--epochs N]
[--out DIR] [--set key=value ...]`` trains with cross-validation (see :mod:`classify.cv`);
``wb classify predict FILE... --checkpoint DIR/model.pt [--top-k 5]`` prints the top classes;
``wb classify listen --checkpoint DIR/model.pt [--input FILE [--fast]]`` classifies live from
the microphone (or a file streamed through the same path).
"""

from __future__ import annotations

from pathlib import Path

import click

from wb import names

DATASETS = names.DATASETS
MODELS = names.CLASSIFIER_HEADS


def _data_options(func):
    """``--data-dir``, ``--download``, ``--sha256``, ``--set`` and ``--config``: the options
    training and ``prepare`` share (defined once)."""
    options = [
        click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                     help="Dataset folder (default: the adapter's default location)."),
        click.option("--download", is_flag=True, help="Download the dataset when it is missing."),
        click.option("--sha256", default=None,
                     help="Expected SHA-256 of the downloaded archive."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Config override, e.g. --set train.lr=3e-4."),
        click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                     help="Config file instead of recipes/<dataset>/conf.yml."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


#: ``--checkpoint``: the model file of ``predict`` and ``listen`` (defined once).
_checkpoint_option = click.option(
    "--checkpoint",
    required=True,
    type=click.Path(path_type=str),
    help="Model file written by wb classify (RUN/model.pt).",
)


@click.group("classify", invoke_without_command=True)
@click.option("--dataset", default=None, help="Dataset: " + ", ".join(DATASETS) + ".")
@_data_options
@click.option(
    "--model",
    type=click.Choice(MODELS),
    default=None,
    help="Classifier head (default: the recipe's model.name).",
)
@click.option(
    "--protocol",
    default=None,
    help="Split protocol, e.g. official or loso for fsdd (default: the official one).",
)
@click.option(
    "--folds",
    multiple=True,
    help="Test folds: 'all' (default) or names/positions, e.g. --folds 1,2.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Maximum epochs (overrides train.epochs).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Run folder (default: runs/classify/<dataset>-<model>-<time>).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --out: reuse finished folds, resume the interrupted one.",
)
@click.pass_context
def classify(
    ctx: click.Context,
    dataset: str | None,
    data_dir: str | None,
    model: str | None,
    protocol: str | None,
    folds: tuple[str, ...],
    epochs: int | None,
    out: str | None,
    overrides: tuple[str, ...],
    config_path: str | None,
    download: bool,
    sha256: str | None,
    resume: bool,
) -> None:
    """Train and evaluate a classifier with cross-validation on official folds.

    \b
    Writes OUT/metrics.json (accuracy and macro-F1 per fold, mean and std), details.json,
    confusion matrices (PNG + CSV), training curves, config.yml and model.pt.
    \b
    Examples:
      wb classify --dataset fsdd --data-dir data/fsdd --model cnn
      wb classify --dataset fsdd --data-dir data/fsdd --protocol loso --out runs/fsdd-loso
      wb classify predict clip.wav --checkpoint runs/fsdd-loso/model.pt --top-k 3
    """
    if ctx.invoked_subcommand is not None:
        return
    if dataset is None:
        raise click.UsageError("missing --dataset (or a subcommand such as 'predict')")
    dataset = names.dataset(dataset)
    import time
    from pathlib import Path

    from classify.config import resolve_config
    from classify.cv import run_cv

    cfg = resolve_config(dataset, model, overrides, epochs, protocol, config_path)
    if sha256:
        cfg["dataset_options"] = {**(cfg.get("dataset_options") or {}), "sha256": sha256}
    if out is None:
        if resume:
            raise click.UsageError("--resume needs --out (the run folder to continue)")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = str(Path("runs") / "classify" / f"{dataset}-{cfg['model']['name']}-{stamp}")
    run_cv(dataset, cfg, out, data_dir=data_dir, folds=list(folds) or "all",
           download=download, resume=resume)  # fmt: skip


@classify.command("predict")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=str))
@_checkpoint_option
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Number of classes to print per file.",
)
def predict_cmd(files: tuple[str, ...], checkpoint: str, top_k: int) -> None:
    """Print the top-k classes with probabilities for each audio file.

    Long files are cut into sliding windows whose logits are averaged.
    """
    from classify.predict import predict_files

    for pred in predict_files(files, checkpoint):
        click.echo(f"{pred.path} ({pred.windows} window{'s' if pred.windows != 1 else ''})")
        for rank, (name, p) in enumerate(pred.top(top_k), start=1):
            click.echo(f"  {rank}. {name:<20s} {p:.4f}")


@classify.command("listen")
@_checkpoint_option
@click.option(
    "--input",
    "input_path",
    default=None,
    type=click.Path(path_type=str),
    help="Stream this audio file through the same path instead of the microphone.",
)
@click.option(
    "--fast", is_flag=True, help="With --input: as fast as the model runs, not real time."
)
@click.option(
    "--hop",
    type=click.FloatRange(min=0.0, min_open=True),
    default=0.5,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between two classifications (each classifies the model's input length).",
)
@click.option(
    "--top-k", type=click.IntRange(min=1), default=3, show_default=True, help="Classes shown."
)
@click.option(
    "--log",
    "log_path",
    default=None,
    type=click.Path(dir_okay=False, path_type=str),
    help="Write time_s, top1, probability, level_db per classification to this CSV file.",
)
@click.option(
    "--input-device",
    default=None,
    metavar="NAME_OR_INDEX",
    help="Microphone (sounddevice name or index; default: the system's input).",
)
def listen_cmd(
    checkpoint: str,
    input_path: str | None,
    fast: bool,
    hop: float,
    top_k: int,
    log_path: str | None,
    input_device: str | None,
) -> None:
    """Classify live from the microphone: a sliding window of the model's input length every
    --hop seconds, shown in place with a level meter and the top-k classes. Ctrl-C stops;
    the last line is the class with the highest mean probability.

    \b
    wb classify listen --checkpoint runs/classify/fsdd/model.pt
    wb classify listen --checkpoint model.pt --input digit.wav --fast --log out.csv
    """
    from classify.listen import listen, summary
    from wb.errors import WbError

    if fast and input_path is None:
        raise click.UsageError("--fast needs --input FILE (a microphone runs in real time)")
    if log_path is not None and Path(log_path).exists():
        log = Path(log_path)
        first = log.open(errors="replace").readline().strip() if log.is_file() else ""
        if first != "time_s,top1,probability,level_db":
            raise WbError(f"--log {log_path}: exists and is not an earlier listen log")
    same = input_path and log_path and Path(log_path).resolve() == Path(input_path).resolve()
    if same:
        raise WbError(f"--log {log_path}: is the input file; refusing to overwrite it")
    device = int(input_device) if input_device and input_device.isdigit() else input_device
    frames, classes = listen(checkpoint, input_path, fast=fast, hop_seconds=hop, top_k=top_k,
                             log=log_path, input_device=device)  # fmt: skip
    name, p = summary(frames, classes)
    click.echo(f"top-1: {name} (mean probability {p:.3f} over {len(frames)} windows)")
    if log_path:
        click.echo(f"log: {log_path}")


@classify.command("prepare")
@click.option("--dataset", "name", required=True, help="Dataset: " + ", ".join(DATASETS) + ".")
@_data_options
def prepare_cmd(
    name: str, data_dir: str | None, download: bool, sha256: str | None,
    overrides: tuple[str, ...], config_path: str | None,
) -> None:  # fmt: skip
    """Check (or download) a dataset and build its decoded-audio cache."""
    from classify.config import resolve_config
    from classify.cv import open_audio
    from classify.datasets import get_dataset

    name = names.dataset(name)
    cfg = resolve_config(name, overrides=overrides, config_path=config_path)
    if sha256:
        cfg["dataset_options"] = {**(cfg.get("dataset_options") or {}), "sha256": sha256}
    ds = get_dataset(name, data_dir=data_dir, download=download,
                     **dict(cfg.get("dataset_options") or {}))  # fmt: skip
    click.echo(ds.summary())
    rate = int(cfg["frontend"].get("sample_rate") or ds.sample_rate)
    open_audio(ds, rate, cfg.get("cache_dir"), lambda msg: click.echo(msg))


@classify.command("table")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--per-fold", is_flag=True, help="Accuracy per fold (one column each) instead.")
def table_cmd(runs: tuple[str, ...], per_fold: bool) -> None:
    """Print a Markdown results table from run folders (metrics.json, details.json, config.yml).

    One row per run: dataset, protocol, model, parameters, folds, accuracy and macro-F1
    (mean ± std over folds), the train/validation accuracy gap at the best epoch, wall time.
    With --per-fold: the test accuracy of every fold and the mean.
    """
    from classify.reports import fold_table, results_table

    click.echo(fold_table(runs) if per_fold else results_table(runs))


@classify.command("ensemble")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", "out_dir", required=True, metavar="DIR", help="Folder for the scores.")
def ensemble_cmd(runs: tuple[str, ...], out_dir: str) -> None:
    """Score the average class probabilities of finished runs on their test folds.

    The runs must share dataset, protocol and folds (e.g. every head, or one head trained
    with several seeds). Writes DIR/metrics.json (the schema of wb classify), details.json
    and confusion matrices, and prints the per-fold and mean accuracy.

    \b
    wb classify ensemble runs/fsdd-loso-cnn runs/fsdd-loso-cnn-seed1 --out runs/fsdd-loso-ens
    """
    from classify.ensemble import ensemble_runs

    m = ensemble_runs(runs, out_dir)
    for f in m["folds"]:
        click.echo(f"{f['fold']}: accuracy {100 * f['accuracy']:.2f} %")
    click.echo(
        f"{m['model']}: accuracy {100 * m['mean']['accuracy']:.2f} ± "
        f"{100 * m['std']['accuracy']:.2f} %, macro-F1 {100 * m['mean']['macro_f1']:.2f} ± "
        f"{100 * m['std']['macro_f1']:.2f} % over {len(m['folds'])} fold(s) -> {out_dir}"
    )


@classify.command("compare")
@click.argument("run_a", type=click.Path(file_okay=False))
@click.argument("run_b", type=click.Path(file_okay=False))
@click.option(
    "--group-regex", default=None, metavar="REGEX",
    help="Group of a clip's file name (first capture group), for a cluster-bootstrap "
    "interval, e.g. '^(.*?)(?:__\\d+)?\\.wav$' (one work) for corpus_style.",
)  # fmt: skip
@click.option("--resamples", default=2000, show_default=True, help="Bootstrap resamples.")
def compare_cmd(run_a: str, run_b: str, group_regex: str | None, resamples: int) -> None:
    """Compare two finished runs clip by clip on the test clips both scored.

    Clips are matched by label and file name (predictions.csv), so runs on different copies
    or sizes of a data set compare on what they share. Prints both accuracies on those clips,
    how many only one run gets right, McNemar's exact p-value and, with --group-regex, a 95 %
    cluster-bootstrap interval of the difference that keeps a work's clips together.

    \b
    wb classify compare runs/classify/cs324-cnn5-f1 runs/classify/cs432-cnn5-f1 \\
        --group-regex '^(.*?)(?:__\\d+)?\\.wav$'
    """
    from classify.compare import compare_runs, format_comparison

    click.echo(format_comparison(compare_runs(run_a, run_b, group_regex, resamples)))


@classify.command("synth-speech")
@click.option("--out", "out_dir", required=True, metavar="DIR", help="Folder to create.")
@click.option("--per-class", default=300, show_default=True, help="Renditions per digit.")
@click.option("--sample-rate", default=8000, show_default=True, help="Output rate in Hz.")
@click.option("--seed", default=0, show_default=True, help="Seed of voice/pitch/rate draws.")
def synth_speech_cmd(out_dir: str, per_class: int, sample_rate: int, seed: int) -> None:
    """Write synthetic spoken digits (espeak-ng voices) to DIR/<digit>/*.wav.

    Every rendition draws an English accent, a voice variant, a pitch and a speaking rate.
    Train with them as extra, training-only clips via --set extra_train=DIR (FSDD and
    AudioMNIST class names). Needs espeak-ng (apt-get install espeak-ng).

    \b
    wb classify synth-speech --out data/fsdd-espeak
    wb classify --dataset fsdd --protocol loso --set extra_train=data/fsdd-espeak
    """
    from classify.synth_speech import DIGIT_WORDS, synthesize

    out = synthesize(out_dir, per_class=per_class, sample_rate=sample_rate, seed=seed)
    click.echo(f"{len(DIGIT_WORDS) * per_class} synthetic clips in {out}")
