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
        audio.info(path)
    raise WbError("voice-to-MIDI transcription is not implemented yet")


@click.group("datasets")
def datasets() -> None:
    """Prepare and inspect data sets."""
