"""Report pages in a real browser: headless Chromium through selenium (``make test-browser``).

Each kind of page (separation, classification, run) is loaded from ``file://`` with no console
errors; playback moves the playhead; a click on a spectrogram seeks; the stems of a separation
play in sync, solo mutes the others, and playing the mixture pauses the stems. Screenshots go
to ``$WB_ARTIFACTS`` (default ``artifacts/browser``). Without Chromium, chromedriver or
selenium the tests are skipped with a message saying what to install.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wb.report import build_report

pytestmark = pytest.mark.browser

SR = 16000
ARTIFACTS = Path(os.environ.get("WB_ARTIFACTS", "artifacts/browser"))


def _find(*names: str) -> str | None:
    return next((p for n in names if (p := shutil.which(n))), None)


@pytest.fixture(scope="module")
def driver():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e .[dev])")
    chromium = _find("chromium", "chromium-browser", "google-chrome")
    chromedriver = _find("chromedriver")
    if not chromium or not chromedriver:
        pytest.skip("no chromium/chromedriver (`make test-browser` installs chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--autoplay-policy=no-user-gesture-required", "--mute-audio",
                "--allow-file-access-from-files"):  # fmt: skip
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(chromedriver), options=opts)
    d.set_window_size(1200, 1000)
    yield d
    d.quit()


def _open(d, page: Path, name: str):
    d.get(page.resolve().as_uri())
    deadline = time.time() + 10
    script = "return Array.from(document.querySelectorAll('audio')).every(a => a.readyState >= 2)"
    while not d.execute_script(script):
        assert time.time() < deadline, "audio never became playable"
        time.sleep(0.1)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    return lambda suffix="": d.save_screenshot(str(ARTIFACTS / f"{name}{suffix}.png"))


def _x(d, css: str, k: int = 0) -> float:
    return d.execute_script(
        "return document.querySelectorAll(arguments[0])[arguments[1]].getBoundingClientRect().left",
        css, k,
    )  # fmt: skip


def _prop(d, css: str, name: str) -> list:
    """Property ``name`` of every element matching ``css``."""
    return d.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(a => a[arguments[1]])",
        css, name,
    )  # fmt: skip


def _times(d, css: str) -> list[float]:
    return _prop(d, css, "currentTime")


def _click_spec(d, k: int, frac: float) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    spec = d.find_elements(By.CSS_SELECTOR, ".spec")[k]
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", spec)
    width = spec.rect["width"]
    chain = ActionChains(d).move_to_element_with_offset(spec, int((frac - 0.5) * width), 0)
    chain.click().perform()


def _tone(freq: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def separation_folder(tmp_path_factory) -> Path:
    """A folder as ``wb separate`` writes it (marker, stems), with its input beside it."""
    root = tmp_path_factory.mktemp("sep")
    stems = {"soprano": _tone(523.25, 6), "bass": _tone(130.81, 6)}
    sf.write(root / "chorale.wav", stems["soprano"] + stems["bass"], SR)
    track = root / "separated" / "chorale"
    track.mkdir(parents=True)
    for name, x in stems.items():
        sf.write(track / f"{name}.wav", x, SR)
    marker = {"written_by": "wb separate", "input": str(root / "chorale.wav"),
              "files": ["soprano.wav", "bass.wav"]}  # fmt: skip
    (track / ".wb-separate.json").write_text(json.dumps(marker))
    build_report(track)
    return track


def test_separation_page_plays_seeks_and_syncs(driver, separation_folder):
    d = driver
    shot = _open(d, separation_folder / "report.html", "separation")
    assert d.execute_script("return document.body.dataset.reportKind") == "separation"
    stems = ".synced audio"
    x0 = [_x(d, ".synced .playhead", k) for k in range(2)]
    d.execute_script("document.querySelector('.play-all').click()")
    time.sleep(1.5)
    x1 = [_x(d, ".synced .playhead", k) for k in range(2)]
    assert all(b > a + 20 for a, b in zip(x0, x1, strict=True)), (x0, x1)  # pixels
    times = _times(d, stems)
    assert min(times) > 0.5 and max(times) - min(times) < 0.15, times
    shot("_playing")
    # solo the bass: the soprano is muted, the bass is not
    d.execute_script("document.querySelectorAll('.solo')[1].click()")
    assert _prop(d, stems, "muted") == [True, False]
    # playing the mixture pauses the stems
    d.execute_script("document.querySelector('audio').play()")
    time.sleep(0.3)
    assert _prop(d, "audio", "paused") == [False, True, True]
    d.execute_script("document.querySelector('audio').pause()")
    # a click at 25 % of the soprano's spectrogram seeks every stem to 1.5 s of 6 s
    _click_spec(d, 1, 0.25)
    time.sleep(0.3)
    assert _times(d, stems) == pytest.approx([1.5, 1.5], abs=0.1)
    left = d.execute_script("return document.querySelectorAll('.synced .playhead')[0].style.left")
    assert float(left.rstrip("%")) == pytest.approx(25, abs=2)
    shot("_seeked")


@pytest.fixture(scope="module")
def classification_folder(tmp_path_factory) -> Path:
    """A ``wb classify`` run folder with two misclassified clips."""
    root = tmp_path_factory.mktemp("cls")
    clips = []
    for k, freq in enumerate((300.0, 2000.0)):
        clips.append(root / f"clip{k}.wav")
        sf.write(clips[-1], _tone(freq, 2.0), SR)
    run = root / "run"
    (run / "folds" / "fold1").mkdir(parents=True)
    fold = {"fold": "fold1", "accuracy": 0.0, "macro_f1": 0.0, "n_test": 2}
    (run / "metrics.json").write_text(
        json.dumps(
            {
                "dataset": "folder",
                "model": "cnn",
                "folds": [fold],
                "mean": {"accuracy": 0.0, "macro_f1": 0.0},
                "std": {"accuracy": 0.0, "macro_f1": 0.0},
            }
        )
    )
    (run / "details.json").write_text(json.dumps({
        "classes": ["low", "high"], "folds": [{**fold, "n_train": 8, "best_epoch": 1,
                                               "gap_at_best_epoch": {"acc_gap": 0.25}}],
        "pooled": {"accuracy": 0.0, "macro_f1": 0.0, "confusion": [[0, 1], [1, 0]]},
        "gap_at_best_epoch": {"acc_gap": {"mean": 0.25, "std": 0.0}}}))  # fmt: skip
    history = [{"epoch": e, "train_acc": 0.5 + 0.1 * e, "val_acc": 0.5, "train_loss": 1 - 0.1 * e,
                "val_loss": 1.0} for e in range(4)]  # fmt: skip
    (run / "folds" / "fold1" / "result.json").write_text(
        json.dumps({"name": "fold1", "history": history})
    )
    (run / "predictions.csv").write_text(
        "fold,path,label,predicted,p_label,p_predicted\n"
        f"fold1,{clips[0]},low,high,0.2,0.8\nfold1,{clips[1]},high,low,0.4,0.6\n"
    )
    build_report(run)
    return run


def test_classification_page_plays_clips(driver, classification_folder):
    d = driver
    shot = _open(d, classification_folder / "report.html", "classification")
    assert d.execute_script("return document.body.dataset.reportKind") == "classification"
    assert d.execute_script("return document.querySelectorAll('audio').length") == 2
    imgs = d.execute_script("return Array.from(document.images).map(i => i.naturalWidth)")
    assert len(imgs) >= 4 and min(imgs) > 0  # confusion, curves, two spectrograms
    x0 = _x(d, ".playhead")
    d.execute_script("document.querySelector('audio').play()")
    time.sleep(1.0)
    assert _x(d, ".playhead") > x0 + 20
    # the second clip plays alone: the first pauses
    d.execute_script("document.querySelectorAll('audio')[1].play()")
    time.sleep(0.3)
    assert _prop(d, "audio", "paused") == [True, False]
    d.execute_script("document.querySelectorAll('audio')[1].pause()")
    _click_spec(d, 0, 0.75)
    time.sleep(0.2)
    assert _times(d, "audio")[0] == pytest.approx(1.5, abs=0.1)
    shot()


def test_run_page_loads(driver, tmp_path):
    run = tmp_path / "run"
    (run / "csv" / "version_0").mkdir(parents=True)
    (run / "config.yml").write_text("train:\n  lr: 0.001\n")
    (run / "csv" / "version_0" / "metrics.csv").write_text(
        "epoch,step,train_loss,val_loss\n0,10,1.0,1.1\n1,20,0.8,0.9\n"
    )
    (run / "metrics_test.json").write_text(json.dumps({
        "sources": {"alto": {"SI-SDR": 3.0}}, "mean": {"SI-SDR": 3.0}, "n_tracks": 1}))  # fmt: skip
    build_report(run)
    d = driver
    shot = _open(d, run / "report.html", "run")
    assert d.execute_script("return document.body.dataset.reportKind") == "run"
    assert d.execute_script("return Array.from(document.images).every(i => i.naturalWidth > 0)")
    assert "alto" in d.find_element("css selector", "table").text
    shot()


def test_transcription_page_plays_input_and_rendering_in_sync(driver, tmp_path):
    from wb.cli import main

    src = tmp_path / "line.wav"
    t = np.arange(int(4 * SR)) / SR
    sf.write(src, (0.3 * np.sin(2 * np.pi * 220 * t) * (t % 1 < 0.7)).astype(np.float32), SR)
    out = tmp_path / "midi"
    assert main(["--quiet", "transcribe", str(src), "--out", str(out), "--model", "pyin",
                 "--report"]) == 0  # fmt: skip
    d = driver
    shot = _open(d, out / "report.html", "transcription")
    assert d.execute_script("return document.body.dataset.reportKind") == "transcription"
    assert d.execute_script("return Array.from(document.images).every(i => i.naturalWidth > 0)")
    d.execute_script("document.querySelector('.play-all').click()")
    time.sleep(1.0)
    times = _times(d, ".synced audio")
    assert len(times) == 2 and min(times) > 0.3 and max(times) - min(times) < 0.15, times
    shot("_playing")
