"""The one recipe runner: ``python -m recipes.<name> <stage> [options]``.

A recipe is a ``conf.yml`` and a table of :class:`Stage` objects; this module turns the table
into a command line (click), resolves the config and guards errors, so recipes hold no
argument parsing of their own. Every stage accepts:

``--config FILE``   the recipe config (default: the recipe's ``conf.yml``)
``--set KEY=VALUE`` config overrides (:func:`wb.config.apply_overrides`); a key whose first part
                    is not a config group belongs to the stage's group, so ``--set seed=1``
                    means ``data.seed=1`` for a stage whose group is ``data``
``--quick``         merge the config's ``quick:`` overlay (a CI-sized profile)
``--quiet``         no progress bars; ``--debug`` shows tracebacks

plus its own :class:`Option` objects, each of which either sets one config key (defined once,
shared with any ``wb`` command that takes the same setting) or is an argument of the stage
function. Config precedence: ``conf.yml`` < ``quick:`` overlay < ``--set`` < stage options.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from wb.config import apply_overrides, load_yaml, merge


@dataclass(frozen=True)
class Option:
    """A command-line option that sets one config key or passes one stage argument.

    Attributes:
        flag: the long option, e.g. ``"--sample-rate"``.
        help: one help line.
        key: dotted config key the value goes to (``"data.sample_rate"``); ``None``: the
            value is a stage argument named after the flag (``sample_rate``).
        type: click parameter type (``int``, ``float``, ``str``, a :class:`click.Choice`).
        default: value when the option is not given (``None``: the config decides).
        is_flag: a boolean switch.
    """

    flag: str
    help: str
    key: str | None = None
    type: Any = None
    default: Any = None
    is_flag: bool = False

    @property
    def dest(self) -> str:
        """The Python name of the value (``--sample-rate`` -> ``sample_rate``)."""
        return self.flag.lstrip("-").replace("-", "_")

    def click_option(self) -> click.Option:
        """The equivalent :class:`click.Option`."""
        if self.is_flag:
            return click.Option([self.flag, self.dest], is_flag=True, default=False, help=self.help)
        return click.Option(
            [self.flag, self.dest], type=self.type, default=self.default, help=self.help,
            show_default=self.default is not None,
        )  # fmt: skip


def apply_options(
    cfg: Mapping[str, Any], options: Sequence[Option], values: Mapping[str, Any]
) -> dict[str, Any]:
    """Copy of ``cfg`` with every config-setting option whose value is not ``None`` applied.

    Args:
        cfg: the config tree.
        options: the options (those with ``key`` set are applied).
        values: ``{option.dest: value}``.
    """
    out = merge(cfg, {})
    for opt in options:
        value = values.get(opt.dest)
        if opt.key is None or value is None or (opt.is_flag and not value):
            continue
        node = out
        *groups, last = opt.key.split(".")
        for g in groups:
            node = node.setdefault(g, {})
        node[last] = value
    return out


@dataclass
class StageContext:
    """What a stage function receives.

    Attributes:
        args: ``{name: value}`` of the stage's own options (all of them, config-setting ones
            included), and ``quiet``.
        config_path: the ``--config`` file.
        overrides: the ``--set`` strings.
        quick: whether ``--quick`` was given.
        group: the stage's config group.
        options: the stage's options.
    """

    args: dict[str, Any]
    config_path: Path
    overrides: tuple[str, ...] = ()
    quick: bool = False
    group: str | None = None
    options: tuple[Option, ...] = field(default_factory=tuple)

    @property
    def quiet(self) -> bool | None:
        """``True`` with ``--quiet``, else ``None`` (the library's default)."""
        return True if self.args.get("quiet") else None

    def config(
        self,
        path: str | os.PathLike | None = None,
        overlay: tuple[str, str] | None = None,
        overlays: Sequence[tuple[str, str]] = (),
    ) -> dict[str, Any]:
        """Resolve the config: ``path`` (default ``--config``), its ``quick:`` overlay when
        ``--quick``, then ``overlay`` and ``overlays`` in order, the ``--set`` overrides, then
        the stage's config-setting options.

        The ``quick:`` group itself is removed from the result. ``overlay=("unseen", "data")``
        merges the config's ``unseen:`` group over its ``data:`` group (an alternative data
        set that ``--set`` and the options still override); a dotted source
        (``"profiles.vocals"``) names a nested group, and an empty destination (``""``)
        merges it over the whole config. A missing source group merges nothing.

        Raises:
            ConfigError: unreadable file, malformed or unknown override.
        """
        from wb.training.config import rename_legacy, rename_legacy_override

        cfg = load_yaml(path or self.config_path)
        quick = cfg.pop("quick", None) or {}
        if self.quick:
            cfg = merge(cfg, quick)
        for src, dst in ([overlay] if overlay else []) + list(overlays):
            group: Any = cfg
            for key in src.split("."):
                group = group.get(key) if isinstance(group, dict) else None
            group = group or {}
            if dst:
                cfg[dst] = merge(cfg.get(dst) or {}, group)
            else:
                cfg = merge(cfg, group)
        if isinstance(cfg.get("train"), dict):  # former key names (a run saved before them)
            cfg["train"] = rename_legacy(cfg["train"])
        if self.group:
            cfg.setdefault(self.group, {})
        overrides = []
        for item in self.overrides:
            plus = "+" if item.startswith("+") else ""
            body = item[len(plus) :]
            if self.group and body.split("=", 1)[0].split(".", 1)[0] not in cfg:
                body = f"{self.group}.{body}"
            overrides.append(rename_legacy_override(plus + body))
        return apply_options(apply_overrides(cfg, overrides), self.options, self.args)


@dataclass(frozen=True)
class Stage:
    """One stage of a recipe.

    Attributes:
        run: ``run(ctx: StageContext) -> exit code or None``; it reads the config through
            ``ctx.config()`` and calls library code.
        help: one help line.
        group: the config group un-prefixed ``--set`` keys belong to.
        options: the stage's own options.
        passthrough: the stage parses nothing itself: every argument after the stage name
            (``--help`` included) reaches it as ``ctx.args["argv"]``, for stages that hand
            over to a ``wb`` command which already defines the options.
    """

    run: Callable[[StageContext], int | None]
    help: str
    group: str | None = None
    options: tuple[Option, ...] = ()
    passthrough: bool = False


def build_cli(prog: str, conf: str | os.PathLike, stages: Mapping[str, Stage]) -> click.Group:
    """The click group of a recipe: one sub-command per stage.

    Args:
        prog: how the recipe is invoked, for help texts (``python -m recipes.<name>``).
        conf: the recipe's default ``conf.yml``.
        stages: ``{stage name: Stage}`` in display order.
    """
    group = click.Group(prog, help=f"{prog} STAGE [options]", context_settings={
        "help_option_names": ["-h", "--help"], "max_content_width": 100,
    })  # fmt: skip
    for name, stage in stages.items():
        if stage.passthrough:
            group.add_command(_passthrough_command(name, stage, Path(conf)))
            continue
        params = [
            click.Option(["--config", "config_path"], default=str(conf), show_default=True,
                         help="Recipe config file."),
            click.Option(["--set", "overrides"], multiple=True, metavar="KEY=VALUE",
                         help="Config override (repeatable)."),
            click.Option(["--quick"], is_flag=True, help="CI-sized profile (the quick: overlay)."),
            click.Option(["--quiet", "-q"], is_flag=True, help="No progress bars."),
            *(opt.click_option() for opt in stage.options),
        ]  # fmt: skip

        def callback(_stage: Stage = stage, **values: Any) -> int:
            config_path = Path(values.pop("config_path"))
            overrides = tuple(values.pop("overrides"))
            quick = bool(values.pop("quick"))
            if values.get("quiet"):
                os.environ["WB_QUIET"] = "1"
            ctx = StageContext(
                values, config_path, overrides, quick, _stage.group, tuple(_stage.options)
            )
            return int(_stage.run(ctx) or 0)

        group.add_command(click.Command(name, params=params, callback=callback, help=stage.help))
    return group


def _passthrough_command(name: str, stage: Stage, conf: Path) -> click.Command:
    def callback(argv: tuple[str, ...]) -> int:
        return int(stage.run(StageContext({"argv": list(argv)}, conf)) or 0)

    return click.Command(
        name, callback=callback, help=stage.help, add_help_option=False,
        params=[click.Argument(["argv"], nargs=-1, type=click.UNPROCESSED)],
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )  # fmt: skip


def run_recipe(
    prog: str,
    conf: str | os.PathLike,
    stages: Mapping[str, Stage],
    argv: Sequence[str] | None = None,
) -> int:
    """Run a recipe stage with ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    Errors print one ``error: ...`` line (``--debug``: a traceback): 1 for bad input or failed
    work, 2 for usage errors, as ``wb`` does (:func:`wb.cli.run_guarded`).
    """
    from wb.cli import restore_env, run_guarded

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    group = build_cli(prog, conf, stages)
    with restore_env("WB_QUIET"):
        return run_guarded(
            lambda: group.main(args=args, prog_name=prog, standalone_mode=False), debug
        )
