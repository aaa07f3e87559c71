"""wb.report: the streaming spectrogram, page rendering, the generic run page, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wb.cli import main
from wb.errors import WbError
from wb.report import (
    Page,
    Section,
    Table,
    Text,
    Tracks,
    build_report,
    clip_track,
    log_spectrogram,
    render,
)

SR = 16000


def _tone(freq: float, seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_spectrogram_peak_is_at_the_tone_frequency():
    x = _tone(1000.0, 2.0)
    db, freqs, duration = log_spectrogram([x], SR, len(x))
    assert duration == pytest.approx(2.0)
    peak = freqs[db[:, db.shape[1] // 2].argmax()]
    assert peak == pytest.approx(1000.0, rel=0.03)
    assert freqs[-1] == SR / 2 and freqs[0] == pytest.approx(30.0)
    # a tone that starts half-way: the first columns are quiet at 1000 Hz, the last loud
    y = np.concatenate([np.zeros(SR, np.float32), _tone(1000.0, 1.0)])
    db, freqs, _ = log_spectrogram([y], SR, len(y))
    row = np.abs(freqs - 1000).argmin()
    assert db[row, -3] - db[row, 2] > 60


def test_spectrogram_does_not_depend_on_block_sizes():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SR * 3 + 123).astype(np.float32)
    one, _, d1 = log_spectrogram([x], SR, len(x), max_columns=50)
    cuts = np.cumsum(rng.integers(1, 3000, size=40))
    many, _, d2 = log_spectrogram(np.split(x, cuts[cuts < len(x)]), SR, len(x), max_columns=50)
    np.testing.assert_allclose(one, many, atol=1e-3)
    assert d1 == d2 == pytest.approx(len(x) / SR)
    # stereo blocks are downmixed: a (2, n) block of identical channels gives the same image
    two, _, _ = log_spectrogram([np.stack([x, x])], SR, len(x), max_columns=50)
    np.testing.assert_allclose(one, two, atol=1e-3)


def test_long_audio_gives_bounded_columns_and_short_audio_one():
    blocks = (np.full(SR * 60, 0.1 * k, np.float32) for k in range(1, 21))  # 20 minutes
    db, _, duration = log_spectrogram(blocks, SR, SR * 60 * 20, max_columns=400)
    assert 300 <= db.shape[1] <= 401 and duration == pytest.approx(1200.0)
    db, _, duration = log_spectrogram([_tone(440, 0.01)], SR, 160)
    assert db.shape[1] == 1 and duration == pytest.approx(0.01)


def test_render_escapes_and_holds_players():
    track = clip_track(_tone(440, 0.5), SR, "<b>clip</b>", note="true <x>")
    page = Page("T & <title>", "sub", [
        Section("S", [Tracks([track]), Table(["a"], [["<script>alert(1)</script>"]]),
                      Text("<i>x</i>", pre=True)]),
    ])  # fmt: skip
    html = render(page)
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert "&lt;b&gt;clip&lt;/b&gt;" in html and "T &amp; &lt;title&gt;" in html
    assert html.count("<audio") == 1 and 'src="data:audio/wav;base64,' in html
    assert 'class="playhead"' in html and "requestAnimationFrame" in html


def test_run_page_has_tables_curves_and_config(tmp_path):
    run = tmp_path / "run"
    (run / "csv" / "version_0").mkdir(parents=True)
    (run / "config.yml").write_text("model:\n  name: htdemucs\n")
    rows = ["epoch,step,train_loss,val_si_sdr"] + [f"{e},{e * 10},{1 - e / 10},{e / 2}" for e in
                                                   range(4)]  # fmt: skip
    (run / "csv" / "version_0" / "metrics.csv").write_text("\n".join(rows) + "\n")
    summary = {"sources": {"soprano": {"SI-SDR": 1.25, "SDR": None}},
               "mean": {"SI-SDR": 1.25, "SDR": None}, "n_tracks": 3}  # fmt: skip
    (run / "metrics_test.json").write_text(json.dumps(summary))
    (run / "metrics_other.json").write_text(json.dumps({"a": {"b": 0.5}}))
    path = build_report(run)
    html = path.read_text()
    assert path == run / "report.html"
    assert "<td>soprano</td><td>1.25</td><td>n/a</td>" in html
    assert "<td>a.b</td><td>0.5000</td>" in html
    assert "Training curves" in html and "name: htdemucs" in html


def test_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(WbError, match="not a folder"):
        build_report(tmp_path / "missing")
    with pytest.raises(WbError, match="not a report folder"):
        build_report(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yml").write_text("a: 1\n")
    assert main(["report", str(run), "--reference", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "reference" in err
    assert not (run / "report.html").exists()
    assert main(["report", str(run)]) == 0
    assert "report: " in capsys.readouterr().out


def test_display_n_fft_is_about_32_ms():
    from wb.report import display_n_fft

    assert [display_n_fft(sr) for sr in (8000, 16000, 22050, 44100, 48000)] == [
        256, 512, 512, 1024, 2048,
    ]  # fmt: skip
