"""Run folders, atomic writes and file checksums.

A run folder is ``runs/<recipe>/<name or timestamp>/`` holding the resolved config
(``config.yml``), checkpoints, ``metrics.json``, plots and reports. Every file is written
through a temporary file in the same folder and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file (any :func:`hashlib.new` algorithm, e.g. ``"sha256"``, ``"md5"``).

    Reads 1 MiB at a time, so memory stays flat for large archives.

    Raises:
        OSError: the file cannot be read.
    """
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def default_mode() -> int:
    """The permission bits a plain ``open()`` would give a new file (0o666 minus the umask).

    ``tempfile.mkstemp`` creates files as 0o600; atomic writers chmod to this before renaming.
    """
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``.

    Args:
        path: destination; parent folders are created.
        write: writes the whole file at the given temporary path.

    Returns:
        The destination path. On any exception the temporary file is removed and the
        destination is left as it was.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, default_mode())
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def make_run_dir(root: str | os.PathLike, name: str | None = None) -> Path:
    """Create ``root/<name>`` (or ``root/<YYYYmmdd-HHMMSS>``, suffixed if taken) and return it."""
    root = Path(root)
    base = name or time.strftime("%Y%m%d-%H%M%S")
    run = root / base
    k = 1
    while name is None and run.exists():
        run = root / f"{base}-{k}"
        k += 1
    run.mkdir(parents=True, exist_ok=True)
    return run
