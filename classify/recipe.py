"""The classification recipes' stages (``python -m recipes.<dataset> STAGE [options]``).

Every stage hands over to the ``wb classify`` command that defines its options, so each
option exists once:

==========  ======================================================================
prepare     ``wb classify prepare --dataset <dataset>``: check/download, build the cache
train       ``wb classify --dataset <dataset>``: cross-validate (``metrics.json``)
predict     ``wb classify predict``: top classes of audio files
table       ``wb classify table``: Markdown results table of run folders
ensemble    ``wb classify ensemble``: probability average of finished runs
synth       ``wb classify synth-speech``: synthetic spoken digits (espeak-ng)
==========  ======================================================================
"""

from __future__ import annotations

from wb.recipe import Stage, StageContext

_COMMANDS = {
    "prepare": (["classify", "prepare", "--dataset", "{dataset}"], "check or download the data, "
                "build the audio cache"),
    "train": (["classify", "--dataset", "{dataset}"], "cross-validate a classifier"),
    "predict": (["classify", "predict"], "top classes of audio files"),
    "table": (["classify", "table"], "Markdown results table of run folders"),
    "ensemble": (["classify", "ensemble"], "probability average of finished runs"),
    "synth": (["classify", "synth-speech"], "synthetic spoken digits (espeak-ng)"),
}  # fmt: skip


def stages(dataset: str) -> dict[str, Stage]:
    """The stage table of the recipe of ``dataset`` (a name of :data:`wb.names.DATASETS`)."""

    def forward(prefix: list[str]):
        def run(ctx: StageContext) -> int:
            from wb.cli import main

            return main([p.format(dataset=dataset) for p in prefix] + ctx.args["argv"])

        return run

    return {
        name: Stage(forward(prefix), help_line, passthrough=True)
        for name, (prefix, help_line) in _COMMANDS.items()
    }
