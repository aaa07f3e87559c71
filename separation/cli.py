"""``wb separate``: apply a separation model to audio files."""

from __future__ import annotations

import click

from wb.errors import WbError


@click.command("separate")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--model", "model", default=None, help="Shipped model name, Demucs name, or checkpoint path."
)
@click.option("--out", "out_dir", default="separated", show_default=True, help="Output folder.")
def separate(inputs: tuple[str, ...], model: str | None, out_dir: str) -> None:
    """Separate each INPUT into stems, written to OUT/<input stem>/<source>.wav."""
    from wb import audio

    for path in inputs:
        audio.load(path)
    raise WbError("no separation model is available yet")
