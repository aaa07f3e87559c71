"""``wb separate --report`` and ``wb report`` on a track folder: players, URLs, metrics."""

from __future__ import annotations

import re
import urllib.parse

import numpy as np
import pytest
import soundfile as sf

from wb.cli import main

from .conftest import SR


def _mixture(path, seconds=1.5):
    t = np.arange(int(SR * seconds)) / SR
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.random.default_rng(0).standard_normal(len(t))
    sf.write(path, x.astype(np.float32), SR)
    return path


def test_separate_report_references_stems_and_input(tmp_path, capsys, model_file):
    (tmp_path / "in dir").mkdir()
    src = _mixture(tmp_path / "in dir" / "my song.wav")
    out = tmp_path / "out"
    code = main(["--quiet", "separate", str(src), "--model", model_file, "--out", str(out),
                 "--report"])  # fmt: skip
    stdout = capsys.readouterr().out
    assert code == 0 and "report: " in stdout
    html = (out / "my song" / "report.html").read_text()
    srcs = re.findall(r'<audio controls preload="auto" src="([^"]+)"', html)
    assert srcs[1:] == ["tone.wav", "noise.wav"]
    mixture = (out / "my song" / urllib.parse.unquote(srcs[0])).resolve()
    assert mixture == src.resolve()  # "../../in%20dir/my%20song.wav"
    assert html.count('class="solo"') == 2 and html.count('class="tracks synced"') == 1
    # the folder with its report is still wb separate's own: a rerun replaces it
    code = main(["--quiet", "separate", str(src), "--model", model_file, "--out", str(out)])
    assert code == 0 and not (out / "my song" / "report.html").exists()


def test_reference_metrics_against_an_oracle(tmp_path, capsys, model_file):
    src = _mixture(tmp_path / "mix.wav")
    out = tmp_path / "out"
    assert main(["--quiet", "separate", str(src), "--model", model_file, "--out", str(out)]) == 0
    track = out / "mix"
    # the stems themselves as the reference: SI-SDR at the cap, SI-SDRi finite
    assert main(["report", str(track), "--reference", str(track)]) == 0
    html = (track / "report.html").read_text()
    row = re.search(r"<tr><td>tone</td>(.*?)</tr>", html).group(1)
    cells = re.findall(r"<td>([^<]+)</td>", row)
    head = re.findall(r"<th>([^<]+)</th>", html.split("Metrics against")[1])
    values = dict(zip(head[1:], cells, strict=True))
    assert float(values["SI-SDR"]) >= 99.0
    # swapped references: the tone scored against the noise is far worse
    swapped = tmp_path / "swapped"
    swapped.mkdir()
    (swapped / "tone.wav").write_bytes((track / "noise.wav").read_bytes())
    (swapped / "noise.wav").write_bytes((track / "tone.wav").read_bytes())
    assert main(["report", str(track), "--reference", str(swapped)]) == 0
    html = (track / "report.html").read_text()
    row = re.search(r"<tr><td>tone</td>(.*?)</tr>", html.split("Metrics against")[1]).group(1)
    si_sdr = float(re.findall(r"<td>([^<]+)</td>", row)[list(values).index("SI-SDR")])
    assert si_sdr < 20.0
    capsys.readouterr()


@pytest.mark.parametrize("case", ["missing stem", "not a folder"])
def test_bad_reference_is_one_line(tmp_path, capsys, model_file, case):
    src = _mixture(tmp_path / "mix.wav")
    out = tmp_path / "out"
    assert main(["--quiet", "separate", str(src), "--model", model_file, "--out", str(out)]) == 0
    ref = tmp_path / "ref"
    if case == "missing stem":
        ref.mkdir()
        sf.write(ref / "tone.wav", np.zeros(100, np.float32), SR)
    capsys.readouterr()
    assert main(["report", str(out / "mix"), "--reference", str(ref)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --reference") and err.count("\n") == 1
    assert not (out / "mix" / "report.html").exists()
