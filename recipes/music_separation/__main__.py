"""Music separation: ``python -m recipes.music_separation <stage> [options]``.

Stages (library code in :mod:`separation.music`; the runner is :mod:`wb.recipe`):
``prepare`` makes the stems folder (synthetic songs, MUSDB18-HQ or MUSDB18), ``train``
trains a model, ``evaluate`` scores a split as SiSEC 2018 does (museval JSON per track),
``average`` averages the weights of runs, ``export`` writes a model file.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from separation import music, stages
from wb.recipe import Stage, run_recipe

STAGES = {
    "prepare": Stage(music.prepare, "make the stems folder (synthetic, musdb18hq, musdb18)",
                     "data", music.PREPARE_OPTIONS),
    "train": Stage(music.train, "train a separation model", "train", music.TRAIN_OPTIONS),
    "evaluate": Stage(music.evaluate, "museval per track, SiSEC 2018 aggregation", "data",
                      music.EVALUATE_OPTIONS),
    "average": Stage(stages.average, "average the best weights of runs (a uniform model soup)",
                     "train", stages.AVERAGE_OPTIONS),
    "export": Stage(music.export, "write a self-describing model file", "inference",
                    music.EXPORT_OPTIONS),
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run a stage with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    conf = Path(__file__).with_name("conf.yml")
    return run_recipe("python -m recipes.music_separation", conf, STAGES, argv)


if __name__ == "__main__":
    sys.exit(main())
