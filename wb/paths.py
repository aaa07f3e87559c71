"""The project's one cache root.

Everything wb caches (decoded-audio caches, downloaded dataset archives, datasets fetched with
``--download``, the music21 parse cache) lives under :func:`cache_root`:

====================  ==============================================
``classify/``         decoded, resampled clip caches (``wb classify``)
``downloads/<name>/`` dataset archives while they download (resumable)
``datasets/<name>/``  datasets fetched with ``--download`` (``$WB_DATA_DIR`` overrides)
``chorales/``         the music21 chorale parse cache
====================  ==============================================
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$WB_CACHE_DIR``, else ``$XDG_CACHE_HOME/wb``, else ``~/.cache/wb`` (XDG base dirs)."""
    if os.environ.get("WB_CACHE_DIR"):
        return Path(os.environ["WB_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base).expanduser() / "wb"


def cache_dir(*parts: str) -> Path:
    """A sub-folder of :func:`cache_root` (not created), e.g. ``cache_dir("classify")``."""
    return cache_root().joinpath(*parts)
