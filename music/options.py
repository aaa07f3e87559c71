"""Command-line options shared by ``wb datasets chorales`` and the SATB recipe's ``prepare``
stage: each sets one key of the ``data:`` group (:func:`music.chorales.prepare_chorales`)."""

from __future__ import annotations

import click

from wb.recipe import Option

PREPARE_OPTIONS = (
    Option("--root", "output folder", key="data.root"),
    Option("--sample-rate", "Hz, 8000..48000 (default 16000)", key="data.sample_rate", type=int),
    Option("--renditions", "renditions per chorale", key="data.renditions", type=int),
    Option(
        "--timbre",
        "instrument set",
        key="data.timbre",
        type=click.Choice(["choir", "ensemble", "mixed", "diverse", "bach10"]),
    ),  # fmt: skip
    Option("--seed", "global seed", key="data.seed", type=int),
    Option("--limit", "only the first N works (sorted names)", key="data.limit", type=int),
    Option("--pieces", "comma-separated works, e.g. bach/bwv255,bwv256", key="data.pieces"),
    Option("--splits", "only these splits, e.g. test or train,valid", key="data.splits"),
    Option("--jobs", "worker processes (default: CPU count)", key="data.jobs", type=int),
)
