"""The reliability suite: every case runs ``wb`` as a real process (``python -m wb.cli``).

A case passes when the process ends as a user would want: on bad input one ``error:`` line
on stderr, a non-zero exit, no traceback and no output left behind; on good input a complete
output. Kill cases use a real SIGKILL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def wb(
    *args: str, cwd: Path, timeout: float = 300, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``wb ARGS`` in a new Python process and wait for it."""
    return subprocess.run(
        [sys.executable, "-m", "wb.cli", *args], cwd=cwd, env={**env(), **(env_extra or {})},
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout,
    )  # fmt: skip


def env() -> dict[str, str]:
    """The test process's environment with the project importable, bars off, 1 thread each."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    e.update(WB_QUIET="1", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return e


def assert_one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The process failed with exactly one ``error:`` line on stderr and no traceback."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "(rerun with --debug)" not in lines[0], proc.stderr  # an error we did not foresee
    return lines[0]


@pytest.fixture(scope="session")
def classifier_file(tmp_path_factory) -> Path:
    """A small classifier model file (3 classes, 8 kHz, 1 s windows), as ``wb classify``
    writes."""
    from classify.models import CLASS_REF, Classifier
    from wb.checkpoint import save_model

    kwargs = {
        "n_classes": 3, "sample_rate": 8000, "n_samples": 8000,
        "frontend": {"n_fft": 128, "n_mels": 16}, "model": {"name": "cnn", "widths": [4]},
    }  # fmt: skip
    torch.manual_seed(0)
    model = Classifier(**kwargs)
    meta = {"classes": ["a", "b", "c"], "sample_rate": 8000, "length": {"seconds": 1.0}}
    return save_model(
        tmp_path_factory.mktemp("clf") / "model.pt", CLASS_REF, kwargs, model.state_dict(), meta
    )


def peak_rss_mb(*args: str, cwd: Path, timeout: float = 600) -> tuple[int, float]:
    """Run ``wb ARGS`` under a fresh parent and return ``(exit code, child peak RSS in MB)``."""
    code = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run([sys.executable, '-m', 'wb.cli', *sys.argv[1:]], "
        "stdin=subprocess.DEVNULL, capture_output=True)\n"
        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env(), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    rc, kb = out.stdout.split()
    return int(rc), int(kb) / 1024
