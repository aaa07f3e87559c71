"""Voice-to-MIDI transcription: ``python -m recipes.voice2midi <stage> [options]``.

Stages (library code in :mod:`music.transcription.stages`; the runner is :mod:`wb.recipe`):
``prepare`` renders the synthetic sung lines, ``train`` trains the encoder-decoder,
``evaluate`` prints the side-by-side table (encoder-decoder greedy and with beam search, frame
head, pYIN, basic-pitch),
``export`` writes a small model file.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from music.transcription import stages
from wb.recipe import Stage, run_recipe

STAGES = {
    "prepare": Stage(stages.prepare, "render the synthetic sung lines", "data",
                     stages.PREPARE_OPTIONS),
    "train": Stage(stages.train, "train the encoder-decoder transcriber", "train",
                   stages.TRAIN_OPTIONS),
    "evaluate": Stage(stages.evaluate, "side-by-side table on SSVD valid and synthetic test",
                      "evaluate", stages.EVALUATE_OPTIONS),
    "export": Stage(stages.export, "write a self-describing model file", "inference",
                    stages.EXPORT_OPTIONS),
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run a stage with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    conf = Path(__file__).with_name("conf.yml")
    return run_recipe("python -m recipes.voice2midi", conf, STAGES, argv)


if __name__ == "__main__":
    sys.exit(main())
