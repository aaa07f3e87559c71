"""Synthetic spoken digits (espeak-ng) and the ``extra_train`` training-only clips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from classify import synth_speech
from classify.cv import ConcatAudio, add_extra_train
from classify.datasets.base import Clip, ClipDataset, Split
from wb.audio import save
from wb.cli import main
from wb.errors import ConfigError, DependencyError, WbError
from wb.runs import default_mode

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed"
)
WORDS = {"0": "zero", "6": "six"}
SMALL = dict(words=WORDS, per_class=2, accents=["en-us"], variants=["m3", "f2"], quiet=True)


@needs_espeak
def test_synthesize_writes_trimmed_deterministic_clips(tmp_path: Path) -> None:
    out = synth_speech.synthesize(tmp_path / "a", **SMALL)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav"))
    assert len(files) == 4 and {f.split("/")[0] for f in files} == set(WORDS)
    for f in files:
        info = sf.info(out / f)
        assert info.samplerate == 8000 and info.subtype == "PCM_16" and info.channels == 1
        x, _ = sf.read(out / f)
        assert 0.1 < len(x) / 8000 < 1.5  # one word, silence trimmed
        frame = 80  # 10 ms: both ends are within 40 dB of the loudest frame
        db = 10 * np.log10(np.mean(x[: len(x) // frame * frame].reshape(-1, frame) ** 2, 1))
        assert db[0] >= db.max() - 40.5 and db[-1] >= db.max() - 40.5
    assert out.stat().st_mode & 0o777 == default_mode(directory=True)  # readable by others
    manifest = json.loads((out / synth_speech.MANIFEST).read_text())
    assert manifest["clips"] == 4 and manifest["accents"] == ["en-us"]
    # same settings -> same bytes, whatever the number of jobs; a finished folder is kept
    again = synth_speech.synthesize(tmp_path / "b", **SMALL, jobs=1)
    for f in files:
        assert (out / f).read_bytes() == (again / f).read_bytes()
    stamp = (out / files[0]).stat().st_mtime_ns
    synth_speech.synthesize(tmp_path / "a", **SMALL)
    assert (out / files[0]).stat().st_mtime_ns == stamp
    # ... but other settings never overwrite it
    with pytest.raises(WbError, match="exists"):
        synth_speech.synthesize(tmp_path / "a", **{**SMALL, "seed": 1})


@needs_espeak
def test_synthesize_leaves_nothing_on_failure(tmp_path: Path, monkeypatch) -> None:
    calls = []

    def failing(*args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise WbError("espeak-ng failed")
        return np.zeros(800, np.float32) + 0.1

    monkeypatch.setattr(synth_speech, "render", failing)
    with pytest.raises(WbError, match="failed"):
        synth_speech.synthesize(tmp_path / "out", **SMALL)
    assert list(tmp_path.iterdir()) == []


@needs_espeak
def test_synthesize_rejects_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(WbError, match="no voice"):
        synth_speech.synthesize(tmp_path / "x", **{**SMALL, "variants": ["nosuchvoice"]})
    with pytest.raises(WbError, match="pitch"):
        synth_speech.synthesize(tmp_path / "x", **{**SMALL, "pitch": (50, 120)})
    assert not (tmp_path / "x").exists()


def test_missing_espeak_is_a_dependency_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(synth_speech.shutil, "which", lambda name: None)
    with pytest.raises(DependencyError, match="apt-get install espeak-ng"):
        synth_speech.synthesize(tmp_path / "x", **SMALL)


# ------------------------------------------------------------------------------ extra_train


def _folder(root: Path, classes: dict[str, int]) -> Path:
    for name, n in classes.items():
        for k in range(n):
            save(root / name / f"{name}_{k}.wav", np.full(400, 0.01 * (k + 1)), 8000)
    return root


def test_add_extra_train_appends_training_only_clips(tmp_path: Path) -> None:
    own = _folder(tmp_path / "own", {"low": 2, "mid": 2, "high": 2})
    clips = [Clip(p, label, "x", p.name) for label, name in enumerate(("low", "mid", "high"))
             for p in sorted((own / name).glob("*.wav"))]  # fmt: skip
    ds = ClipDataset("tiny", ["low", "mid", "high"], clips, 8000, 0.05)
    audio = [np.full(400, float(i), np.float32) for i in range(len(clips))]
    split = Split("a", (0, 1, 2, 3), (4, 5))
    extra_dir = _folder(tmp_path / "extra", {"mid": 2, "high": 1})
    cfg = {"extra_train": str(extra_dir), "frontend": {"sample_rate": 8000},
           "cache_dir": str(tmp_path / "cache")}  # fmt: skip
    lines: list[str] = []
    ds2, audio2, (split2,) = add_extra_train(ds, audio, [split], cfg, lines.append)
    assert split2.train == split.train and split2.test == split.test
    assert split2.extra_train == (6, 7, 8) and len(audio2) == 9 and len(ds2.clips) == 9
    assert [ds2.clips[i].label for i in split2.extra_train] == [2, 1, 1]  # high, mid, mid
    assert all(ds2.clips[i].group.startswith("extra:") for i in split2.extra_train)
    assert np.all(audio2[0] == 0) and np.allclose(audio2[8], 0.02, atol=1e-4)
    assert any("3 training-only clips" in line for line in lines)
    # one class is enough; audio at another rate is resampled to the front end's rate
    hi = tmp_path / "hi"
    save(hi / "low" / "a.wav", 0.1 * np.ones(1600), 16000)
    _, audio3, (split3,) = add_extra_train(ds, audio, [split], {**cfg, "extra_train": str(hi)})
    assert split3.extra_train == (6,) and len(audio3[6]) == 800
    bad = _folder(tmp_path / "bad", {"mid": 1, "bass": 1})
    with pytest.raises(ConfigError, match="bass"):
        add_extra_train(ds, audio, [split], {**cfg, "extra_train": str(bad)}, lines.append)
    with pytest.raises(ConfigError, match="own clips"):  # test clips must never be trained on
        add_extra_train(ds, audio, [split], {**cfg, "extra_train": str(own)}, lines.append)


def test_concat_audio_indexes_both_parts() -> None:
    both = ConcatAudio([np.zeros(2), np.ones(2)], [np.full(3, 2.0)])
    assert len(both) == 3 and both[2].tolist() == [2.0, 2.0, 2.0] and both[1][0] == 1
    for i in (-1, 3):
        with pytest.raises(IndexError):
            both[i]


def test_extra_train_through_the_cli(tmp_path: Path, capsys) -> None:
    from tests.classify.test_cli import CLASSES, TINY

    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    for name, freq in CLASSES.items():
        for k in range(6):
            t = np.arange(2400) / 8000
            save(data / name / f"{name}_{k}.wav", 0.4 * np.sin(2 * np.pi * freq * t), 8000)
    extra = tmp_path / "extra"
    for name, freq in CLASSES.items():
        for k in range(3):
            wave = 0.3 * np.sin(2 * np.pi * freq * (1.05 + 0.01 * k) * np.arange(2000) / 8000)
            save(extra / name / f"{k}.wav", wave + 0.01 * rng.standard_normal(2000), 8000)
    base = ["classify", "--dataset", "folder", "--data-dir", str(data), "--epochs", "1",
            "--folds", "fold1", "--set", f"cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    for item in TINY:
        base += ["--set", item]
    out, plain = tmp_path / "run", tmp_path / "plain"
    assert main([*base, "--out", str(out), "--set", f"extra_train={extra}"]) == 0
    assert main([*base, "--out", str(plain)]) == 0
    fold = json.loads((out / "details.json").read_text())["folds"][0]
    ref = json.loads((plain / "details.json").read_text())["folds"][0]
    assert fold["n_extra_train"] == 9 and ref["n_extra_train"] == 0
    # the extra clips only add to training: validation and test are those of the plain run
    assert (fold["n_val"], fold["n_test"]) == (ref["n_val"], ref["n_test"])
    assert fold["n_train"] == ref["n_train"] + 9
    capsys.readouterr()
    # resuming with another extra_train is refused
    assert main([*base, "--out", str(out), "--resume"]) == 1
    assert "extra_train differ" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "r2"), "--set", f"extra_train={data}/low"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err if line.startswith("error:")] == err[-1:]
    assert "needs at least 1 class sub-folder" in err[-1] and "Traceback" not in "".join(err)
