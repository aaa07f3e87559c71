"""``wb classify listen``: the sliding window, streaming a file in (simulated) real time, the
log, and the errors without a microphone."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf
import torch

from classify import listen as listen_mod
from classify.listen import Display, SlidingClassifier, listen, summary
from wb.cli import main

SR = 8000
CLASSES = ["low", "mid", "high"]
FREQS = [300.0, 900.0, 2000.0]


class Recorder(torch.nn.Module):
    """Logits = the window's first and last samples and its mean; records every window."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x[0].numpy().copy())
        return torch.stack([x[:, 0], x[:, -1], x.mean(-1)], dim=-1)


class ToneOracle(torch.nn.Module):
    """A perfect classifier of the three tones: logits from the energy at each frequency."""

    def forward(self, x):
        spec = torch.fft.rfft(x * torch.hann_window(x.shape[-1]), dim=-1).abs()
        bins = [round(f * x.shape[-1] / SR) for f in FREQS]
        energy = torch.stack([spec[:, b - 2 : b + 3].sum(-1) for b in bins], dim=-1)
        return 20 * torch.log10(energy + 1e-6)


def _tone(freq, seconds, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_window_is_the_last_second_of_the_stream_and_silence_before():
    stream = np.random.default_rng(0).standard_normal(int(1.3 * SR)).astype(np.float32)
    model = Recorder()
    clf = SlidingClassifier(model, SR, window_seconds=1.0, hop_seconds=0.5)
    frames = clf.push(stream) + clf.finish()
    assert [f.time for f in frames] == pytest.approx([0.5, 1.0, 1.3])
    first, second, last = model.seen
    np.testing.assert_array_equal(first[: SR // 2], 0)
    np.testing.assert_array_equal(first[SR // 2 :], stream[: SR // 2])
    np.testing.assert_array_equal(second, stream[:SR])
    np.testing.assert_array_equal(last, stream[-SR:])
    assert frames[0].level_db == pytest.approx(0.0, abs=0.5)  # unit-variance noise: 0 dBFS
    assert clf.finish() == []  # nothing new since the last frame


def test_block_sizes_do_not_change_the_frames():
    stream = np.random.default_rng(1).standard_normal(3 * SR + 77).astype(np.float32)
    whole = SlidingClassifier(Recorder(), SR, 1.0, 0.25)
    a = whole.push(stream) + whole.finish()
    parts = SlidingClassifier(Recorder(), SR, 1.0, 0.25)
    cuts = np.cumsum(np.random.default_rng(2).integers(1, 3 * SR, size=20))
    b = [f for chunk in np.split(stream, cuts[cuts < len(stream)]) for f in parts.push(chunk)]
    b += parts.finish()
    assert [f.time for f in a] == [f.time for f in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x.probabilities, y.probabilities, rtol=1e-6)


@pytest.fixture
def oracle(monkeypatch):
    meta = {"classes": CLASSES, "sample_rate": SR, "length": {"seconds": 0.5}}
    monkeypatch.setattr("classify.predict.load_classifier", lambda path: (ToneOracle(), meta))


def test_file_streamed_in_real_time_follows_the_tones(tmp_path, oracle):
    # 44.1 kHz file (resampled as it streams): 1.5 s low, then 1.5 s high
    path = tmp_path / "tones.wav"
    sf.write(path, np.concatenate([_tone(300, 1.5, 44100), _tone(2000, 1.5, 44100)]), 44100)
    waits = []
    now = [0.0]

    def sleep(seconds):
        waits.append(seconds)
        now[0] += seconds

    frames, classes = listen("model.pt", path, hop_seconds=0.25, sleep=sleep,
                             clock=lambda: now[0], display=Display(3, live=False))  # fmt: skip
    tops = [(round(f.time, 2), classes[int(f.probabilities.argmax())]) for f in frames]
    assert tops[0][0] == 0.25 and tops[-1][0] == pytest.approx(3.0, abs=0.01)
    assert all(c == "low" for t, c in tops if 0.5 <= t <= 1.5)
    assert all(c == "high" for t, c in tops if t >= 2.0)
    # real time: the stream waited for (nearly) its whole length; --fast does not wait
    assert sum(waits) == pytest.approx(3.0, abs=0.01) and max(waits) <= 0.25
    waits.clear()
    listen("model.pt", path, fast=True, sleep=sleep, display=Display(3, live=False))
    assert waits == []


def test_cli_top1_and_log(tmp_path, oracle, capsys):
    path = tmp_path / "mid.wav"
    sf.write(path, _tone(900, 0.4, 16000), 16000)  # shorter than one hop
    log = tmp_path / "out.csv"
    argv = ["classify", "listen", "--checkpoint", "m.pt", "--input", str(path), "--fast",
            "--log", str(log)]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out.startswith("top-1: mid ") and "[" in err  # the level meter
    rows = list(csv.DictReader(log.open()))
    assert len(rows) == 1 and rows[0]["top1"] == "mid" and float(rows[0]["time_s"]) == 0.4
    assert main(argv) == 0  # an earlier log may be replaced ...
    path.with_suffix(".txt").write_text("notes")
    argv[-1] = str(path.with_suffix(".txt"))
    assert main(argv) == 1  # ... any other file may not
    assert "not an earlier listen log" in capsys.readouterr().err
    assert path.with_suffix(".txt").read_text() == "notes"


def test_without_a_microphone_one_line(monkeypatch, oracle, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "sounddevice", None)  # PortAudio missing
    assert main(["classify", "listen", "--checkpoint", "m.pt"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no audio input") and err.count("\n") == 1
    assert main(["classify", "listen", "--checkpoint", "m.pt", "--fast"]) == 2


def test_no_input_device_one_line(monkeypatch, oracle, capsys):
    class FakeSd:
        @staticmethod
        def query_devices(device=None, kind=None):
            raise RuntimeError("Error querying device -1")

    import sys

    monkeypatch.setitem(sys.modules, "sounddevice", FakeSd)
    assert main(["classify", "listen", "--checkpoint", "m.pt"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no audio input device") and err.count("\n") == 1


def test_display_meter_and_summary():
    assert Display.meter(0.0, width=4) == "[####]" and Display.meter(-90.0, width=4) == "[----]"
    assert Display.meter(-30.0, width=4) == "[##--]"
    f = listen_mod.Frame
    frames = [f(0.5, np.array([0.6, 0.4]), -10), f(1.0, np.array([0.0, 1.0]), -10)]
    assert summary(frames, ["a", "b"]) == ("b", pytest.approx(0.7))
