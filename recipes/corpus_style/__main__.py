"""``python -m recipes.corpus_style STAGE [options]``.

``prepare`` renders the style set (:func:`music.styles.prepare_styles`, the ``render:``
group); every other stage is the classification recipe's (:mod:`classify.recipe`) on the
``folder`` dataset; ``train``'s ``--data-dir`` and ``--config`` default to this recipe's.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click

from classify.recipe import stages
from wb.recipe import Option, Stage, StageContext, run_recipe

CONF = Path(__file__).with_name("conf.yml")


def prepare(ctx: StageContext) -> None:
    """Render ``render.per_class`` excerpts of every style into ``render.root``."""
    from music.styles import prepare_styles

    cfg = ctx.config()
    counts = prepare_styles(**cfg["render"], quiet=ctx.quiet)
    click.echo(f"styles in {cfg['render']['root']}: {counts}")


def _with_defaults(stage: Stage) -> Stage:
    """A forwarded ``wb classify`` stage that gets this recipe's data folder and config
    unless the command line gives them."""

    def run(ctx: StageContext) -> int:
        argv = list(ctx.args["argv"])

        def given(flag: str) -> bool:
            return any(a == flag or a.startswith(f"{flag}=") for a in argv)

        if not given("--data-dir"):
            from wb.config import load_yaml

            argv += ["--data-dir", load_yaml(CONF)["render"]["root"]]
        if not given("--config"):
            argv += ["--config", str(CONF)]
        ctx.args["argv"] = argv
        return stage.run(ctx)

    return Stage(run, stage.help, passthrough=True)


STAGES = {
    "prepare": Stage(prepare, "render the style set (music21 corpus, FluidSynth)", "render",
                     (Option("--root", "output folder", key="render.root"),)),
    "train": _with_defaults(stages("folder")["train"]),
    # these read finished runs or model files, not the data folder: forwarded as they are
    **{name: s for name, s in stages("folder").items() if name in ("predict", "table", "ensemble")},
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run a stage with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    return run_recipe("python -m recipes.corpus_style", CONF, STAGES, argv)


if __name__ == "__main__":
    sys.exit(main())
