"""``wb.runs``: temporary build folders get the permissions of a plain ``mkdir``."""

from __future__ import annotations

import os
from pathlib import Path

from wb.runs import default_mode, temp_dir


def test_temp_dir_is_beside_dest_with_mkdir_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        dest = tmp_path / "a" / "stems"
        tmp = temp_dir(dest, "partial")
        assert tmp.parent == dest.parent and tmp.name.startswith(".stems.partial-")
        assert tmp.is_dir() and not any(tmp.iterdir())
        assert default_mode(directory=True) == 0o755 and default_mode() == 0o644
        assert tmp.stat().st_mode & 0o777 == 0o755  # not mkdtemp's 0o700
        other = temp_dir(dest, "tmp", parent=tmp_path)
        assert other.parent == tmp_path and other != tmp
    finally:
        os.umask(old)
