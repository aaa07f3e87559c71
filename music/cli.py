"""``wb transcribe`` and ``wb datasets``."""

from __future__ import annotations

import click

from music.options import PREPARE_OPTIONS
from music.transcription.cli import transcribe


@click.group("datasets")
def datasets() -> None:
    """Prepare and inspect data sets."""


def _chorales(overrides: tuple[str, ...], **values) -> None:
    """Render the Bach chorale SATB data set (as `python -m recipes.satb_separation prepare`).

    Writes <root>/<split>/<piece>__r<k>/{mixture,soprano,alto,tenor,bass}.wav, the four
    parts' MIDI files, meta.json, <root>/manifest.json and <root>/config.yml. Settings are
    those of music.chorales.ChoraleConfig (e.g. --set drop_fraction=0 --set reverb=false).
    """
    from pathlib import Path

    from music import chorales
    from wb.config import apply_overrides, save_yaml
    from wb.recipe import apply_options

    if not values.get("root"):
        raise click.UsageError("missing option '--root' (the output folder)")
    data = apply_overrides(chorales.default_kwargs(), overrides)
    cfg = apply_options({"data": data}, PREPARE_OPTIONS, values)
    chorales.check_prepare(cfg["data"])
    save_yaml(cfg, Path(cfg["data"]["root"]) / "config.yml")
    chorales.prepare_chorales(**cfg["data"])


datasets.add_command(
    click.Command(
        "chorales",
        callback=_chorales,
        help=_chorales.__doc__,
        params=[
            *(opt.click_option() for opt in PREPARE_OPTIONS),
            click.Option(
                ["--set", "overrides"], multiple=True, metavar="KEY=VALUE", help="Any setting."
            ),
        ],  # fmt: skip
    )
)

__all__ = ["datasets", "transcribe"]
