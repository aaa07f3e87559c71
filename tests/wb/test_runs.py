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


def test_remove_stale_temps_only_removes_dead_owners(tmp_path: Path) -> None:
    """Scratch folders of a killed process go; those of live processes and other hosts stay."""
    import subprocess
    import sys

    from wb.runs import _owner, remove_stale_temps

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    host = _owner().rsplit(".", 1)[0]
    dest = tmp_path / "song"
    stale = tmp_path / f".song.tmp-{host}.{dead.stdout.strip()}-abc"
    stale.mkdir()
    (stale / "soprano.wav").write_bytes(b"partial")
    mine = temp_dir(dest, "tmp")
    elsewhere = tmp_path / f".song.tmp-otherhost.{dead.stdout.strip()}-abc"
    elsewhere.mkdir()
    other_dest = tmp_path / f".songs.tmp-{host}.{dead.stdout.strip()}-abc"
    other_dest.mkdir()
    assert remove_stale_temps(dest, "tmp") == [stale]
    assert mine.is_dir() and elsewhere.is_dir() and other_dest.is_dir() and not stale.exists()


def test_check_output_refuses_what_a_command_reads_or_a_run_keeps(tmp_path: Path) -> None:
    import pytest

    from wb.errors import WbError
    from wb.runs import check_output, run_files

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.ckpt").write_bytes(b"weights")
    (run / "config.yml").write_text("a: 1\n")
    model = tmp_path / "model.pt"
    model.write_bytes(b"model")
    kept = [*run_files(run), model]
    for bad in (run / "checkpoints" / "best.ckpt", run / "checkpoints" / "new.pt",
                run / "config.yml", model, run / "sub" / ".." / "config.yml"):  # fmt: skip
        with pytest.raises(WbError, match="would overwrite"):
            check_output(bad, kept, "--out")
    with pytest.raises(WbError, match="is a folder"):
        check_output(run, kept, "--out")
    # beside the run, or where a protected path does not exist yet (csv/), is fine
    assert check_output(run / "model.pt", kept, "--out") == run / "model.pt"
    assert check_output(run / "csv" / "x.json", kept, "--out") == run / "csv" / "x.json"
