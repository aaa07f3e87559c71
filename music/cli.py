"""``wb transcribe`` and ``wb datasets``."""

from __future__ import annotations

import click

from wb.errors import WbError


@click.command("transcribe")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("-o", "--output", default=None, help="Output MIDI file (one input only).")
def transcribe(inputs: tuple[str, ...], output: str | None) -> None:
    """Transcribe a solo voice recording to MIDI."""
    from wb import audio

    for path in inputs:
        audio.load(path)  # decode fully: bad input is reported before anything else
    raise WbError("voice-to-MIDI transcription is not implemented yet")


@click.group("datasets")
def datasets() -> None:
    """Prepare and inspect data sets."""


@datasets.command("chorales")
@click.option("--root", required=True, type=click.Path(path_type=str), help="Output folder.")
@click.option("--sample-rate", type=int, default=None, help="Hz, 8000..48000 (default 16000).")
@click.option("--renditions", type=int, default=None, help="Renditions per chorale.")
@click.option("--timbre", type=click.Choice(["choir", "ensemble", "mixed"]), default=None)
@click.option("--seed", type=int, default=None, help="Global seed.")
@click.option("--limit", type=int, default=None, help="Only the first N works (sorted names).")
@click.option("--pieces", default=None, help="Comma-separated works, e.g. bach/bwv255,bwv256.")
@click.option("--splits", default=None, help="Only these splits, e.g. test or train,valid.")
@click.option("--jobs", type=int, default=None, help="Worker processes (default: CPU count).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Any setting.")
def chorales_cmd(
    root: str,
    sample_rate: int | None,
    renditions: int | None,
    timbre: str | None,
    seed: int | None,
    limit: int | None,
    pieces: str | None,
    splits: str | None,
    jobs: int | None,
    overrides: tuple[str, ...],
) -> None:
    """Render the Bach chorale SATB data set (as `python -m recipes.satb_separation prepare`).

    Writes <root>/<split>/<piece>__r<k>/{mixture,soprano,alto,tenor,bass}.wav, the four
    parts' MIDI files, meta.json, <root>/manifest.json and <root>/config.yml. Settings are
    those of music.chorales.ChoraleConfig (e.g. --set drop_fraction=0 --set reverb=false).
    """
    from pathlib import Path

    from music import chorales
    from wb.config import apply_overrides, save_yaml

    data = apply_overrides(chorales.default_kwargs(), overrides)
    options = {
        "root": root, "sample_rate": sample_rate, "renditions": renditions, "timbre": timbre,
        "seed": seed, "limit": limit, "pieces": pieces, "splits": splits, "jobs": jobs,
    }  # fmt: skip
    data.update({k: v for k, v in options.items() if v is not None})
    chorales.check_prepare_kwargs(data)
    save_yaml({"data": data}, Path(root) / "config.yml")
    chorales.prepare_chorales(**data)
