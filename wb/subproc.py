"""External programs (ffmpeg, fluidsynth, espeak-ng) run with a timeout and no stdin.

Every subprocess of the project goes through :func:`run` (or, for streaming decoders, a
``select`` deadline on each read in :mod:`wb.audio`), so a hung or maliciously slow program
ends in a one-line error instead of hanging the command.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from wb.errors import WbError


def run(
    cmd: Sequence[str], timeout: float, what: str | None = None, text: bool = True
) -> subprocess.CompletedProcess:
    """Run ``cmd`` to completion with its output captured and stdin closed.

    Args:
        cmd: the program and its arguments (never passed through a shell).
        timeout: seconds before the program is killed.
        what: how to name the program in the error (default: ``cmd[0]``).
        text: decode stdout / stderr as text (else bytes).

    Returns:
        the completed process (the caller checks ``returncode``).

    Raises:
        WbError: the program ran longer than ``timeout`` seconds (it is killed) or could not
            be started.
    """
    name = what or str(cmd[0])
    try:
        return subprocess.run(
            list(cmd), capture_output=True, text=text, stdin=subprocess.DEVNULL, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise WbError(f"{name} took longer than {timeout:.0f} s and was stopped") from None
    except OSError as exc:
        raise WbError(f"{name} could not be started ({exc.strerror or exc})") from None
