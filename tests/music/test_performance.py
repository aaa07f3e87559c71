"""Tests of the expressive-performance and room layers of the chorale generator
(music.chorales.performance): each checked against a measurement of the audio it makes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from music import chorales
from music.chorales import performance as perf
from music.synth import DEFAULT_SOUNDFONT, TimedNote, render_midi, write_midi
from tests.music.test_chorales import _work as _synthetic_work
from tests.music.test_chorales import cache_dir, heldout_file, settings  # noqa: F401
from wb.errors import ConfigError

needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not Path(DEFAULT_SOUNDFONT).is_file(),
    reason="needs fluidsynth and fluid-soundfont-gm",
)
SR = 16000


def _expr(**kw) -> perf.PartExpression:
    base = dict(
        detune_cents=0.0, vibrato_cents=0.0, vibrato_rate=5.0, vibrato_delay=0.2, phase=0.0,
        dynamics=((10.0, 1.0, 0.0),) * 3,
    )  # fmt: skip
    return perf.PartExpression(**{**base, **kw})


def _render_note(tmp_path: Path, expr: perf.PartExpression, ccs=()) -> np.ndarray:
    notes = [TimedNote(69, 0.0, 2.0, 100)]  # A4 = 440 Hz for 2 s
    bends = perf.pitch_bend_curve(notes, expr, 2.0)
    midi = write_midi(notes, tmp_path / "n.mid", 73, pitch_bends=bends, control_changes=ccs)
    return render_midi(midi, tmp_path / "n.wav", SR, reverb=False)  # 73: flute


def _f0(audio: np.ndarray) -> np.ndarray:
    import librosa

    f0 = librosa.yin(audio[int(0.3 * SR) : int(1.9 * SR)], fmin=300, fmax=600, sr=SR,
                     frame_length=1024, hop_length=80)  # fmt: skip
    return f0


@needs_fluidsynth
def test_detuning_and_vibrato_are_heard(tmp_path):
    """FluidSynth plays the pitch bends: +20 cents moves A4 to 445.1 Hz, and a 50-cent 5 Hz
    vibrato swings the measured f0 by about +-50 cents at about 5 Hz."""
    plain = np.median(_f0(_render_note(tmp_path, _expr())))
    detuned = np.median(_f0(_render_note(tmp_path, _expr(detune_cents=20.0))))
    assert abs(plain - 440.0) < 1.5
    assert abs(1200 * np.log2(detuned / plain) - 20.0) < 3.0
    f0 = _f0(_render_note(tmp_path, _expr(vibrato_cents=50.0, vibrato_delay=0.01)))
    cents = 1200 * np.log2(f0 / np.median(f0))
    assert 35.0 < np.percentile(np.abs(cents), 95) < 65.0
    spectrum = np.abs(np.fft.rfft(cents - cents.mean(), 4096))
    rate = np.fft.rfftfreq(4096, 80 / SR)[np.argmax(spectrum)]
    assert abs(rate - 5.0) < 0.3


@needs_fluidsynth
def test_expression_controller_changes_the_level(tmp_path):
    loud = _render_note(tmp_path, _expr(), ccs=[(0.0, 11, 127)])
    soft = _render_note(tmp_path, _expr(), ccs=[(0.0, 11, 70)])
    ratio_db = 20 * np.log10(np.std(soft) / np.std(loud))
    assert -15.0 < ratio_db < -3.0


def test_curves_stay_in_range_and_only_emit_changes():
    notes = [TimedNote(60, 0.0, 1.0, 80), TimedNote(62, 1.0, 2.0, 80)]
    expr = _expr(detune_cents=10.0, vibrato_cents=100.0, vibrato_delay=0.3)
    bends = perf.pitch_bend_curve(notes, expr, 2.0)
    values = np.array([v for _, v in bends])
    assert values.min() >= -8192 and values.max() <= 8191
    assert all(a != b for a, b in zip(values, values[1:], strict=False))
    # the depth restarts at the second onset: right after it only the detuning is left
    after = [v for t, v in bends if 1.0 <= t < 1.02]
    assert after and abs(after[0] - round(10 / 200 * 8192)) <= 60
    cc = perf.expression_curve(expr, 30.0, 70)
    assert min(v for _, v in cc) >= 70 and max(v for _, v in cc) <= 127
    assert max(v for _, v in cc) - min(v for _, v in cc) > 20  # it does move
    assert perf.expression_curve(expr, 5.0, 127) == [(0.0, 127)]


def test_legato_overlaps_only_changes_of_pitch():
    rng = np.random.default_rng(0)
    notes = [[60, 0.0, 0.5, 80], [62, 0.5, 1.0, 80], [62, 1.0, 1.5, 80], [64, 2.0, 2.5, 80]]
    out = perf.legato([list(n) for n in notes], 0.05, rng)
    assert 0.5 < out[0][2] <= 0.55  # held into the next pitch
    assert out[1][2] == 1.0  # a repeated pitch: ends as the next starts
    assert out[2][2] == 1.5  # a rest follows: unchanged
    short = [[60, 0.0, 0.5, 80], [62, 0.5, 0.52, 80], [60, 0.52, 1.0, 80]]
    held = perf.legato([list(n) for n in short], 0.05, np.random.default_rng(3))
    assert held[0][2] <= 0.52  # never held into the next C4 over a short note


def _schroeder_rt60(h: np.ndarray, sr: int) -> float:
    edc = np.cumsum((h[1:] ** 2)[::-1])[::-1]
    db = 10 * np.log10(edc / edc[0])
    i5, i25 = np.argmax(db <= -5), np.argmax(db <= -25)
    return 3.0 * (i25 - i5) / sr  # T20 extrapolated to 60 dB


def test_impulse_response_has_the_drawn_rt60_and_wet_level():
    for rt60, wet in ((0.4, -10.0), (1.5, 0.0)):
        h = perf.impulse_response(SR, rt60, wet, np.random.default_rng(1))
        assert h[0] == 1.0
        assert abs(10 * np.log10(np.sum(h[1:] ** 2)) - wet) < 0.01
        assert abs(_schroeder_rt60(h, SR) - rt60) < 0.3 * rt60


def test_microphone_fir_follows_its_control_points():
    from scipy.signal import freqz

    hz, db = (40.0, 200.0, 1000.0, 3000.0, 6400.0, 8000.0), (-12.0, 4.0, -5.0, 3.0, 0.0, -3.0)
    fir = perf.microphone_fir(hz, db, SR)
    assert len(fir) % 2 == 1
    w, resp = freqz(fir, worN=[200.0, 1000.0, 3000.0], fs=SR)
    assert np.allclose(20 * np.log10(np.abs(resp)), [4.0, -5.0, 3.0], atol=1.0)


def test_room_is_linear_per_stem_and_adds_a_floor():
    rng = np.random.default_rng(0)
    room = perf.draw_room(rng, ["a", "b"], (0.5, 0.5), (-6, -6), 6.0, (-60.0, -60.0), SR)
    dry = np.zeros((2, SR * 2))
    dry[0, 100] = 1.0
    dry[1, 5000:6000] = np.sin(np.arange(1000) * 0.3)
    wet = perf.apply_room(dry, SR, room, ["a", "b"])
    assert wet.shape == dry.shape
    again = perf.apply_room(dry, SR, room, ["a", "b"])
    assert np.array_equal(wet, again)  # seeded
    # linear per stem: without the noise floor, the room of a sum is the sum of the rooms
    quiet = perf.RoomPlan(**{**room.__dict__, "noise_db": -400.0})
    a, b = dry.copy(), dry.copy()
    a[:, ::2] = 0.0
    b[:, 1::2] = 0.0
    parts = perf.apply_room(a, SR, quiet, ["a", "b"]) + perf.apply_room(b, SR, quiet, ["a", "b"])
    assert np.allclose(perf.apply_room(dry, SR, quiet, ["a", "b"]), parts, atol=1e-9)
    tail = wet[0, SR // 2 :]  # the impulse at 0 rings on, then the floor is left
    assert np.std(tail) > 0
    silent = np.zeros((2, SR * 2))
    floor = perf.apply_room(silent, SR, room, ["a", "b"])
    assert not floor.any()  # no signal: no reference level, no noise


def test_switches_off_leave_earlier_renders_valid():
    cfg = chorales.ChoraleConfig()
    assert not {"expressive", "room", "rt60", "vibrato_cents"} & set(cfg.render_dict())
    on = chorales.ChoraleConfig(expressive=True, room=True)
    assert {"expressive", "room", "rt60", "vibrato_cents"} <= set(on.render_dict())


@pytest.mark.parametrize(
    "key,bad",
    [("rt60", [2.0, 1.0]), ("wet_db", "x"), ("vibrato_cents", -1), ("expression_floor", 0),
     ("room", "yes"), ("noise_db", [-10, -5])],
)  # fmt: skip
def test_bad_performance_settings_are_named(key, bad):
    with pytest.raises(ConfigError, match=key):
        chorales.ChoraleConfig.from_kwargs(**{key: bad})


def test_switches_leave_the_other_draws_unchanged():
    """Expression and room draw on their own streams: programs, tempo, key and gains are as
    without them, and only legato moves note ends."""
    sop = [[60 + i % 7, float(i), 1.0, 0] for i in range(16)]
    parts = {
        v: [[p - 7 * k, on, d, f] for p, on, d, f in sop] for k, v in enumerate(chorales.VOICES)
    }
    work = _synthetic_work(parts)
    base = chorales.plan_rendition(work, chorales.ChoraleConfig(), 0)
    cfg = chorales.ChoraleConfig(expressive=True, room=True)
    plan = chorales.plan_rendition(work, cfg, 0)
    assert (plan.programs, plan.bpm, plan.gains_db, plan.transposition) == (
        base.programs, base.bpm, base.gains_db, base.transposition,
    )  # fmt: skip
    assert base.expression is None and base.room is None
    assert set(plan.expression) == set(chorales.VOICES)
    assert plan.duration == pytest.approx(base.duration + 0.5 * plan.room.rt60)
    for v in chorales.VOICES:
        assert [n.start for n in plan.notes[v]] == [n.start for n in base.notes[v]]
    assert plan == chorales.plan_rendition(work, cfg, 0)


@needs_fluidsynth
def test_expressive_room_render_keeps_the_mixture_an_exact_sum(settings, tmp_path):  # noqa: F811
    import pretty_midi

    opts = {**settings, "expressive": True, "room": True, "reverb": False}
    chorales.prepare_chorales(tmp_path, pieces="bwv255", jobs=1, log=lambda m: None, **opts)
    d = tmp_path / "test" / "bwv255__r0"
    meta = json.loads((d / "meta.json").read_text())
    assert set(meta["expression"]) == set(chorales.VOICES) and "rt60" in meta["room"]
    ints = {s: sf.read(str(d / f"{s}.wav"), dtype="int16")[0].astype(int) for s in chorales.STEMS}
    assert np.array_equal(ints["mixture"], sum(ints[v] for v in chorales.VOICES))
    inst = pretty_midi.PrettyMIDI(str(d / "soprano.mid")).instruments[0]
    assert inst.pitch_bends and {c.number for c in inst.control_changes} == {11}
