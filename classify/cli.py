"""``wb classify``: train, cross-validate and apply audio classifiers."""

from __future__ import annotations

import click

from wb.errors import WbError


@click.group("classify", invoke_without_command=True)
@click.option(
    "--dataset",
    default=None,
    help="Dataset name (esc50, urbansound8k, audiomnist, fsdd, coral, folder).",
)
@click.pass_context
def classify(ctx: click.Context, dataset: str | None) -> None:
    """Train and evaluate a classifier with cross-validation on official folds."""
    if ctx.invoked_subcommand is None:
        raise WbError("the classification core is not implemented yet")
