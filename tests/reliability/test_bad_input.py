"""Every bad-input case through ``wb separate``, ``wb classify predict``, ``wb info`` and
``wb transcribe``, each in its own process (see :mod:`tests.reliability.conftest`)."""

from __future__ import annotations

import pytest
import soundfile as sf

from tests import badaudio

from .conftest import assert_one_line_error, peak_rss_mb, wb

COMMANDS = ("separate", "predict", "info", "transcribe")


def _argv(command: str, path, tmp, classifier_file) -> list[str]:
    if command == "separate":
        return ["separate", str(path), "--out", str(tmp / "out")]
    if command == "predict":
        return ["classify", "predict", str(path), "--checkpoint", str(classifier_file)]
    if command == "transcribe":
        return ["transcribe", str(path), "--out", str(tmp / "out")]
    return ["info", str(path)]


def _outputs(tmp) -> list[str]:
    """Everything the command may have written (never the input folder's own files)."""
    found = [p for p in (tmp / "out").rglob("*")] if (tmp / "out").exists() else []
    return [str(p) for p in found]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", badaudio.MUST_FAIL)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, classifier_file, command, case):
    path = badaudio.make(tmp_path / "in", case)
    before = path.read_bytes() if path.exists() else None
    proc = wb(*_argv(command, path, tmp_path, classifier_file), cwd=tmp_path)
    line = assert_one_line_error(proc)
    assert path.name in line  # the message names the file
    assert _outputs(tmp_path) == []
    assert (path.read_bytes() if path.exists() else None) == before  # input untouched


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", badaudio.ODD)
def test_odd_input_is_handled_or_refused_cleanly(tmp_path, classifier_file, command, case):
    """One sample, 8 channels, 44,101 Hz: a complete result, or one line and nothing written.
    What each command does is pinned down so that a change shows."""
    path = badaudio.make(tmp_path / "in", case)
    proc = wb(*_argv(command, path, tmp_path, classifier_file), cwd=tmp_path)
    if command == "separate" and case == "eight_channels":  # the stems keep the input layout
        assert "has 8 channels; only mono or stereo" in assert_one_line_error(proc)
        assert _outputs(tmp_path) == []
        return
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    if command == "separate":
        info = sf.info(str(path))
        stems = sorted((tmp_path / "out" / path.stem).glob("*.wav"))
        assert [s.stem for s in stems] == sorted(["soprano", "alto", "tenor", "bass"])
        for s in stems:
            got = sf.info(str(s))
            assert (got.samplerate, got.frames, got.channels) == (
                info.samplerate, info.frames, info.channels
            )  # fmt: skip
    elif command == "predict":
        assert proc.stdout.strip().startswith(str(path))
    elif command == "transcribe":  # a MIDI file and a CSV note list, perhaps without notes
        names = sorted(p.name for p in (tmp_path / "out").iterdir())
        assert names == [".wb-transcribe.json", f"{path.stem}.csv", f"{path.stem}.mid"]
    else:
        assert f"{sf.info(str(path)).samplerate} Hz" in proc.stdout


def test_odd_sample_rate_separates_in_bounded_memory(tmp_path):
    """A 44,101 Hz file (rates with gcd 1 make sinc resamplers build huge kernels) separates
    with the shipped model in well under 2 GB."""
    path = badaudio.make(tmp_path / "in", "rate_44101")
    rc, mb = peak_rss_mb("separate", str(path), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert rc == 0 and mb < 2048, (rc, mb)
    assert len(list((tmp_path / "out" / path.stem).glob("*.wav"))) == 4
