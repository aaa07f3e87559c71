"""The `wb` CLI skeleton: version, help, exit codes, one-line errors without tracebacks."""

from __future__ import annotations

import wave

import numpy as np
import soundfile as sf

from wb import __version__
from wb.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version_and_help(capsys):
    code, out, _ = _run(capsys, "--version")
    assert code == 0 and __version__ in out
    code, out, _ = _run(capsys, "--help")
    assert code == 0
    for group in ("separate", "classify", "transcribe", "datasets"):
        assert group in out


def test_usage_error_exits_2(capsys):
    code, _, err = _run(capsys, "--no-such-option")
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    code, _, err = _run(capsys, "no-such-command")
    assert code == 2 and err.startswith("error: ")


def test_info_prints_facts(tmp_path, capsys):
    p = tmp_path / "ok.wav"
    sf.write(p, np.zeros(8000, dtype=np.float32) + 0.5, 8000)
    code, out, _ = _run(capsys, "info", str(p))
    assert code == 0 and "8000 Hz" in out and "1 ch" in out and "1.00 s" in out


def test_bad_inputs_one_line_error_nonzero_exit(tmp_path, capsys):
    text = tmp_path / "text.wav"
    text.write_text("hello, not audio")
    empty = tmp_path / "empty.wav"
    with wave.open(str(empty), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.0, np.nan, 0.1], dtype=np.float32), 8000, subtype="FLOAT")
    for path in (tmp_path / "missing.wav", text, empty, nan):
        for command in ("info", "separate"):
            code, out, err = _run(capsys, command, str(path))
            assert code == 1, (command, path)
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0]
            assert "Traceback" not in err


def test_one_bad_file_does_not_stop_others(tmp_path, capsys):
    good = tmp_path / "good.wav"
    sf.write(good, np.zeros(800, dtype=np.float32), 8000)
    code, out, err = _run(capsys, "info", str(tmp_path / "missing.wav"), str(good))
    assert code == 1 and "good.wav: 8000 Hz" in out and err.count("error:") == 1
