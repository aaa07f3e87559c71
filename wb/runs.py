"""Run folders, atomic writes and file checksums.

A run folder is ``runs/<recipe>/<name or timestamp>/`` holding the resolved config
(``config.yml``), checkpoints, ``metrics.json``, plots and reports. Every file is written
through a temporary file in the same folder and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from wb.errors import WbError


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


def default_mode(directory: bool = False) -> int:
    """The permission bits a plain ``open()`` (or ``mkdir()`` when ``directory``) would give a
    new file: 0o666 (0o777) minus the umask.

    ``tempfile.mkstemp`` / ``mkdtemp`` create 0o600 / 0o700 entries; atomic writers chmod to
    this before renaming, so other users can read the result as usual.
    """
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def _owner() -> str:
    """``<host>.<pid>`` of this process, with only file-name-safe characters."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
    return f"{host}.{os.getpid()}"


def temp_dir(dest: str | os.PathLike, tag: str, parent: str | os.PathLike | None = None) -> Path:
    """A new empty folder ``.<dest name>.<tag>-<host>.<pid>-XXXX`` to build ``dest`` in before
    renaming it (the owner in the name lets :func:`remove_stale_temps` clean up after a
    process that was killed).

    Args:
        dest: the folder that will be replaced by (renamed from) the temporary one.
        tag: short word in the name (e.g. ``"partial"``).
        parent: where to create it (default: ``dest``'s parent, created if missing), so that
            the final ``os.replace`` stays on one file system.

    Returns:
        the folder, with the permissions of a plain ``mkdir`` (not ``mkdtemp``'s 0o700).
    """
    dest = Path(dest)
    where = Path(parent) if parent is not None else dest.parent
    where.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{tag}-{_owner()}-", dir=where))
    os.chmod(tmp, default_mode(directory=True))
    return tmp


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT: assume alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(
    dest: str | os.PathLike, tag: str, parent: str | os.PathLike | None = None
) -> list[Path]:
    """Remove the :func:`temp_dir` folders for ``dest`` left by processes of this host that no
    longer run (killed with SIGKILL, or by a power cut), so a rerun leaves no partial output.

    Folders of live processes, and of other hosts (a shared file system), are kept.

    Returns:
        the removed folders.
    """
    dest = Path(dest)
    where = Path(parent) if parent is not None else dest.parent
    host = _owner().rsplit(".", 1)[0]
    pattern = re.compile(rf"^\.{re.escape(dest.name)}\.{re.escape(tag)}-{re.escape(host)}\.(\d+)-")
    removed = []
    if not where.is_dir():
        return removed
    for p in where.iterdir():
        m = pattern.match(p.name)
        if m and p.is_dir() and not p.is_symlink() and not _alive(int(m.group(1))):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


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


def check_output(out: str | os.PathLike, protected: Iterable[str | os.PathLike], what: str) -> Path:
    """Refuse an output path that would replace a file this command reads or a run keeps.

    Args:
        out: the file the command is about to write.
        protected: files that must survive (the model or checkpoint read, a run's
            checkpoints, its ``config.yml``); ones that do not exist are ignored, and a
            folder protects every file under it.
        what: the option's name in the message (``--out``).

    Returns:
        ``Path(out)``.

    Raises:
        WbError: ``out`` is an existing folder, or is (or lies under) a protected path.
    """
    dest = Path(out)
    if dest.is_dir():
        raise WbError(f"{what} {dest}: is a folder; give a file name")
    target = dest.resolve()
    for p in protected:
        keep = Path(p).resolve()
        if keep.exists() and (target == keep or keep in target.parents):
            raise WbError(f"{what} {dest}: would overwrite {p}; choose another file")
    return dest


def run_files(run: str | os.PathLike) -> list[Path]:
    """What a run folder must keep when a command writes beside it: ``checkpoints/``,
    ``config.yml``, ``csv/`` (the training logs) and the metrics files an export embeds
    (``metrics.json``, ``metrics_test.json``)."""
    run = Path(run)
    names = ("checkpoints", "config.yml", "csv", "metrics.json", "metrics_test.json")
    return [run / n for n in names]


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
