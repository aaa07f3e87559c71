"""Progress bars (tqdm on stderr), silenced by ``quiet=True`` or ``wb --quiet``."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def quiet_default() -> bool:
    """True when the ``WB_QUIET`` environment variable is set to a non-empty, non-"0" value."""
    return os.environ.get("WB_QUIET", "") not in ("", "0")


def progress(
    iterable: Iterable[T] | None = None,
    desc: str | None = None,
    total: int | float | None = None,
    unit: str = "it",
    quiet: bool | None = None,
) -> tqdm:
    """Wrap ``iterable`` in a tqdm bar on stderr.

    Args:
        iterable: what to iterate; ``None`` gives a manual bar (call ``update``).
        desc: label shown left of the bar.
        total: expected number of items (or units, e.g. seconds of audio).
        unit: unit label.
        quiet: no bar when True; ``None`` follows ``WB_QUIET`` (set by ``wb --quiet``).
    """
    if quiet is None:
        quiet = quiet_default()
    return tqdm(
        iterable, desc=desc, total=total, unit=unit, disable=quiet, leave=False, dynamic_ncols=True
    )
