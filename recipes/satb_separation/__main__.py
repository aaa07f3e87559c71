"""SATB chorale separation: ``python -m recipes.satb_separation <stage> [options]``.

Stages (library code in :mod:`separation.satb`; the runner is :mod:`wb.recipe`):
``prepare`` renders the Bach chorale data set, ``train`` trains a separation model,
``evaluate`` scores a split (BSSEval v4 + SI-SDR per voice), ``average`` averages the weights
of runs, ``export`` writes a model file,
``demo`` renders, separates and scores two held-out chorales.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from separation import satb, stages
from wb.recipe import Stage, run_recipe

STAGES = {
    "prepare": Stage(satb.prepare, "render the Bach chorale SATB data set", "data",
                     satb.SATB_PREPARE_OPTIONS),
    "train": Stage(satb.train, "train a separation model on the chorale data", "train",
                   satb.TRAIN_OPTIONS),
    "evaluate": Stage(satb.evaluate, "BSSEval v4 + SI-SDR per voice on a split", "data",
                      satb.EVALUATE_OPTIONS),
    "average": Stage(stages.average, "average the best weights of runs (a uniform model soup)",
                     "train", stages.AVERAGE_OPTIONS),
    "export": Stage(satb.export, "write a self-describing model file", "inference",
                    satb.EXPORT_OPTIONS),
    "demo": Stage(satb.demo, "render, separate and score two held-out chorales", "data",
                  satb.DEMO_OPTIONS),
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run a stage with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    conf = Path(__file__).with_name("conf.yml")
    return run_recipe("python -m recipes.satb_separation", conf, STAGES, argv)


if __name__ == "__main__":
    sys.exit(main())
