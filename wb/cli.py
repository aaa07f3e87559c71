"""The ``wb`` command: a click group over the libraries.

Exit codes: 0 success, 1 runtime error (bad input file, missing dependency, failed work),
2 usage error (unknown option, bad argument). Errors print one line ``error: <message>`` on
stderr; ``wb --debug ...`` shows the traceback instead. Tests call :func:`main` in-process.
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import click

from wb import __version__
from wb.errors import WbError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


#: Entry-point group through which the packages above ``wb`` add their subcommands
#: (``setup.cfg``: ``[options.entry_points] wb.commands``), so ``wb`` imports none of them.
COMMAND_GROUP = "wb.commands"


class PluginGroup(click.Group):
    """A click group that adds the subcommands registered under :data:`COMMAND_GROUP`,
    loading each one only when it is listed or run."""

    def _plugins(self) -> dict:
        from importlib.metadata import entry_points

        return {ep.name: ep for ep in entry_points(group=COMMAND_GROUP)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Built-in and registered command names, sorted."""
        return sorted({*super().list_commands(ctx), *self._plugins()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """The built-in command ``name``, else the registered one (imported now)."""
        command = super().get_command(ctx, name)
        if command is None and name in self._plugins():
            command = self._plugins()[name].load()
        return command


@click.group(cls=PluginGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="wb")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """wb: audio source separation and music ML workbench.

    \b
    Separate a recording into stems:   wb separate song.wav --out separated/
    Inspect audio files:               wb info song.wav
    Render the Bach chorale data set:  wb datasets chorales --root data/chorales
    Train a classifier:                wb classify --dataset fsdd
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug or ctx.obj.get("debug", False)
    if quiet:
        os.environ["WB_QUIET"] = "1"


@cli.command("info")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=str))
def info_cmd(inputs: tuple[str, ...]) -> None:
    """Validate audio files and print sample rate, channels, duration and peak level."""
    import torch

    from wb import audio

    failed = 0
    for path in inputs:
        try:
            x, sr = audio.load(path)
        except WbError as exc:
            click.echo(f"error: {exc}", err=True)
            failed += 1
            continue
        peak = float(x.abs().max())
        peak_db = 20 * torch.log10(torch.tensor(max(peak, 1e-12))).item()
        click.echo(
            f"{path}: {sr} Hz, {x.shape[0]} ch, {x.shape[1] / sr:.2f} s, peak {peak_db:.1f} dBFS"
        )
    if failed:
        raise SystemExit(1)


@cli.command("report")
@click.argument("folder", type=click.Path(path_type=str))
@click.option(
    "--reference",
    default=None,
    metavar="DIR",
    help="Separation only: folder of reference stems (<stem>.wav) for a per-stem metrics table.",
)
def report_cmd(folder: str, reference: str | None) -> None:
    """Write FOLDER/report.html: a self-contained page to look at and listen to.

    \b
    FOLDER is one of
      a wb separate track folder   mixture and stems: players, spectrograms, playhead,
                                   stems in sync with solo/mute (--reference: metrics)
      a wb classify run folder     per-fold table, confusion matrix, curves with the
                                   overfitting %, worst misclassified clips
      a recipe run folder          evaluation tables, training curves, resolved config
    """
    from wb.report import build_report

    click.echo(f"report: {build_report(folder, reference=reference)}")


@contextmanager
def restore_env(*names: str):
    """Restore the named environment variables to their current values on exit."""
    saved = {n: os.environ.get(n) for n in names}
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


def run_guarded(func: Callable[[], int | None], debug: bool = False) -> int:
    """Call ``func`` and turn every failure into one ``error:`` line and an exit code.

    Args:
        func: does the work; returns an exit code (``None`` means 0).
        debug: print tracebacks instead of hiding them.

    Returns:
        ``func``'s code; 1 for :class:`~wb.errors.WbError` and unexpected exceptions; 2 for
        click usage errors; 130 on Ctrl-C. Never raises for user errors.
    """
    # torchmetrics (a dependency of Lightning) imports pkg_resources, whose deprecation
    # notice says nothing to a user of wb
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    try:
        return int(func() or 0)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return 1
    except click.ClickException as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {exc.format_message()}", err=True)
        return 2 if isinstance(exc, click.UsageError) else exc.exit_code
    except WbError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        return 1
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        return 130
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
        if debug:
            traceback.print_exc()
        else:
            msg = " ".join(str(exc).split())[:200]
            click.echo(f"error: {type(exc).__name__}: {msg} (rerun with --debug)", err=True)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``wb`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    Never raises for user errors: :class:`~wb.errors.WbError` gives exit 1, click usage
    errors exit 2, both as one ``error:`` line on stderr (see :func:`run_guarded`).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    with restore_env("WB_QUIET"):
        return run_guarded(
            lambda: cli.main(
                args=args, prog_name="wb", standalone_mode=False, obj={"debug": debug}
            ),
            debug,
        )


if __name__ == "__main__":
    sys.exit(main())
