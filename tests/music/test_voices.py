"""Tests of the synthetic sung-line data set (music.transcription.voices).

Rendering tests use the real FluidSynth and sound fonts and check the audio by measuring it:
energy onsets against the target onsets, the f0 of held notes against the target pitch, the
pitch-bend range set by RPN 0 and a glide wider than the default +-2 semitones. The chorale
parse cache lives in a per-module temporary folder, so only the works a test needs are
parsed.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from music.synth import SOUNDFONTS, TimedNote, render_midi
from music.transcription import voices as v
from music.transcription.notes import read_notes
from wb.errors import ConfigError

SR = 16000
needs_fonts = pytest.mark.skipif(
    shutil.which("fluidsynth") is None
    or not all(Path(SOUNDFONTS[f][0]).is_file() for f in ("fluidr3", "timgm6mb", "csound")),
    reason="needs fluidsynth, fluid-soundfont-gm, timgm6mb-soundfont and csound-soundfont",
)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("wb-cache"))


@pytest.fixture(scope="module")
def heldout_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("heldout") / "heldout_chorales.txt"
    p.write_text("# held out\nbach/bwv385\nbach/bwv255\n")
    return p


def _f0_midi(x: np.ndarray, a: float, b: float, fmin: float = 80.0, fmax: float = 900.0):
    """Median f0 (fractional MIDI) of ``x`` between ``a`` and ``b`` seconds (YIN)."""
    import librosa

    f0 = librosa.yin(x[int(a * SR) : int(b * SR)], fmin=fmin, fmax=fmax, sr=SR,
                     frame_length=1024, hop_length=80)  # fmt: skip
    return 69.0 + 12.0 * np.log2(np.median(f0) / 440.0)


def _f0_track(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import librosa

    f0 = librosa.yin(x, fmin=150, fmax=600, sr=SR, frame_length=512, hop_length=80)
    return np.arange(len(f0)) * 80 / SR, 69.0 + 12.0 * np.log2(f0 / 440.0)


LINE = [
    TimedNote(60, 0.5, 0.9, 90), TimedNote(64, 1.1, 1.6, 80), TimedNote(67, 1.8, 2.5, 100),
    TimedNote(62, 2.75, 3.2, 70), TimedNote(65, 3.4, 4.2, 90),
]  # fmt: skip


@needs_fonts
def test_rendered_line_matches_its_target(tmp_path):
    """A voice program (Voice Oohs) sung with the drawn pitch errors but no vibrato or
    glides: the .txt is the target, every target onset has an energy onset within 80 ms
    after it, and each held note's f0 is within 50 cents of its MIDI pitch (within 20 cents
    of the intended error)."""
    import librosa

    perf = dataclasses.replace(v.draw_performance(np.random.default_rng(1)), vibrato_cents=0.0,
                               glide_prob=0.0, scoop_prob=0.0, syllables=False)  # fmt: skip
    info = v.render_line(LINE, tmp_path / "x", seed=3, sample_rate=SR, soundfont="fluidr3",
                         program=53, performance=perf, acoustics=v.Acoustics())  # fmt: skip
    target = read_notes(tmp_path / "x.txt")
    np.testing.assert_allclose(target, [[n.start, n.end, n.pitch] for n in LINE], atol=1e-4)
    assert (tmp_path / "x.txt").read_text().splitlines()[0] == "0.5000\t0.9000\t60"
    assert json.loads((tmp_path / "x.json").read_text())["program_name"] == "Voice Oohs"
    x, sr = sf.read(tmp_path / "x.flac")
    assert sr == SR and sf.info(tmp_path / "x.flac").subtype == "PCM_16"
    assert abs(20 * np.log10(np.abs(x).max()) - info["acoustics"]["peak_db"]) < 0.1
    env = librosa.onset.onset_strength(y=x, sr=SR, hop_length=160)
    found = librosa.onset.onset_detect(onset_envelope=env, sr=SR, hop_length=160, units="time")
    for n in LINE:
        lag = found - n.start
        assert np.any((lag > -0.03) & (lag < 0.08)), (n.start, found)
    for n, cents in zip(LINE, info["note_detail"]["cents"], strict=True):
        mid = 0.5 * (n.start + n.end)
        drift = sum(a * np.sin(2 * np.pi * mid / p + ph) for p, a, ph in perf.drift)
        measured = 100 * (_f0_midi(x, n.start + 0.25 * (n.end - n.start), n.end - 0.1) - n.pitch)
        assert abs(measured) < 50.0
        assert abs(measured - (cents + perf.tuning_cents + drift)) < 20.0


@needs_fonts
def test_rpn_sets_the_pitch_bend_range(tmp_path):
    """With RPN 0 set to 12 semitones, a +700 cent bend sounds a fifth up (G4 from C4); the
    General MIDI default range (+-2 semitones) could not reach it."""
    for bend_range, cents in ((12, 700.0), (2, 150.0)):
        mid = v.write_line_midi([TimedNote(60, 0.2, 1.5, 100)], tmp_path / "r.mid", 73,
                                bends=[[(0.0, cents)]], bend_range=bend_range)  # fmt: skip
        x = render_midi(mid, tmp_path / "r.wav", SR, reverb=False)
        assert abs(100 * (_f0_midi(x, 0.6, 1.2) - 60) - cents) < 15.0


@needs_fonts
def test_glide_from_the_previous_pitch_spans_an_octave(tmp_path):
    """A 150 ms portamento from A3 up to A4: the f0 starts near A3 (far below the +-2
    semitone default range's reach) and settles on A4."""
    notes = [TimedNote(57, 0.3, 0.8, 90), TimedNote(69, 0.85, 2.0, 90)]
    perf = v.Performance(glide_prob=1.0, glide_seconds=(0.15, 0.15))
    info = v.render_line(notes, tmp_path / "g", 0, SR, "fluidr3", 73, perf, v.Acoustics())
    assert info["note_detail"]["onset"] == ["plain", "glide"]
    x, _ = sf.read(tmp_path / "g.flac")
    t, m = _f0_track(x)
    assert np.median(m[(t > 0.86) & (t < 0.89)]) < 62.0
    assert 62.0 < np.median(m[(t > 0.92) & (t < 0.95)]) < 67.0
    assert abs(np.median(m[(t > 1.1) & (t < 1.8)]) - 69.0) < 0.2


def test_splits_are_work_disjoint_and_heldout_is_test_only(cache_dir):
    """Works never straddle splits; held-out chorales are listed only in test; a line that
    carries a held-out melody (another harmonisation) is refused for train / valid."""
    heldout = ["bach/bwv385", "bach/bwv255"]
    works = {s: {src.work for src in v.split_sources(s, heldout)} for s in v.SPLITS}
    assert not works["train"] & works["valid"]
    assert not works["train"] & works["test"]
    assert not works["valid"] & works["test"]
    assert set(heldout) <= works["test"]
    sizes = {s: len(w) for s, w in works.items()}
    assert sizes["train"] > 15 * sizes["valid"] and sizes["valid"] > 100
    groups = {src.group for src in v.voice_sources()}
    assert groups == {"chorale", "folk", "fiddle"}
    parts = [s for s in v.voice_sources() if s.work == "bach/bwv169.7"]
    assert [s.part for s in parts] == ["soprano", "alto", "tenor", "bass"]
    # bwv169.7 harmonises the tune of held-out bwv385 ("Nun bitten wir den heiligen Geist")
    assert v.heldout_tune(parts[2], heldout, cache_dir) == "bach/bwv385"
    other = next(s for s in v.voice_sources() if s.work == "bach/bwv1.6")
    assert v.heldout_tune(other, heldout, cache_dir) is None
    with pytest.raises(ConfigError):
        v.split_sources("dev")


def test_plan_line_makes_a_monophonic_singable_target():
    line = [(67 + (k % 5) - 2, k * 1.0, 0.75 if k % 3 else 1.0, k % 8 == 7) for k in range(60)]
    for seed in range(6):
        notes, info = v.plan_line(line, np.random.default_rng(seed), (8.0, 12.0))
        lo, hi = info["singer_range"]
        assert len(notes) >= v.MIN_NOTES
        assert all(a.end <= b.start for a, b in zip(notes, notes[1:], strict=False))
        assert all(lo <= n.pitch <= hi for n in notes)
        assert all(abs(n.start * 1920 - round(n.start * 1920)) < 1e-6 for n in notes)
        assert notes[-1].end - notes[0].start <= info["excerpt_s"] + 1e-6
        assert 0.3 <= notes[0].start <= 1.2


@needs_fonts
def test_prepare_is_idempotent_resumes_and_tests_on_csound(tmp_path, cache_dir, heldout_file):
    root = tmp_path / "voices"
    kw = dict(n_train=2, n_valid=1, n_test=2, sample_rate=8000, seconds=(3.0, 4.0), seed=5,
              heldout=heldout_file, log=None, cache_dir=cache_dir)  # fmt: skip
    first = v.prepare_voices(root, **kw)
    assert first["rendered"] == {"train": 2, "valid": 1, "test": 2}
    assert first["counts"] == {"train": 2, "valid": 1, "test": 2} and first["hours"] > 0
    metas = {p: json.loads(p.read_text()) for p in root.glob("*/*.json")}
    assert len(metas) == 5
    fonts = {m["split"]: set() for m in metas.values()}
    works = {m["split"]: set() for m in metas.values()}
    for m in metas.values():
        fonts[m["split"]].add(m["soundfont"])
        works[m["split"]].add(m["work"])
        assert v.work_split(m["work"], ["bach/bwv385", "bach/bwv255"]) == m["split"]
    assert fonts["test"] == {"csound"}
    assert not (fonts["train"] | fonts["valid"]) & {"csound"}
    assert not works["train"] & works["test"] and not works["valid"] & works["test"]
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["complete"] and manifest["counts"] == first["counts"]

    again = v.prepare_voices(root, **kw)
    assert again["rendered"] == {"train": 0, "valid": 0, "test": 0}
    assert again["skipped"] == {"train": 2, "valid": 1, "test": 2}

    victim = root / "train" / "00001.flac"
    before, _ = sf.read(victim)
    victim.unlink()
    resumed = v.prepare_voices(root, **kw)
    assert resumed["rendered"] == {"train": 1, "valid": 0, "test": 0}
    after, _ = sf.read(victim)
    np.testing.assert_array_equal(before, after)  # items depend on (seed, split, index) only

    with pytest.raises(ConfigError):
        v.prepare_voices(root, **{**kw, "seed": 6})
