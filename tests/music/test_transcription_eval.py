"""Transcription evaluation: note lists I/O, mir_eval scores against hand-computed values, the
SSVD split, and the pYIN baseline on a synthetic sung-like tone sequence."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from music.transcription import baselines, metrics, notes, ssvd
from wb.errors import AudioError, DependencyError, WbError

SSVD_ROOT = Path(__file__).resolve().parents[3] / "shared/data/ssvd/train_valid"

REF = np.array([[0.5, 1.0, 60.0], [1.2, 1.6, 62.0], [2.0, 2.5, 64.0]])


# ----------------------------------------------------------------------------- notes I/O


def test_read_notes_ssvd_format(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(b"1.2000\t1.5000\t62.30\r\n\r\n0.1300\t0.2500\t51.06\r\n0.3 0.3 50\r\n")
    got = notes.read_notes(p)
    assert got.dtype == np.float64 and got.shape == (2, 3)
    np.testing.assert_allclose(got, [[0.13, 0.25, 51.06], [1.2, 1.5, 62.3]])  # sorted, 0-length


@pytest.mark.parametrize(
    "text, where",
    [
        ("0.1\t0.2\t60\n0.3\t0.4\n", ":2:"),
        ("0.1\t0.2\tC4\n", ":1:"),
        ("0.1\t0.2\t60\n\n0.5\t0.4\t60\n", ":3: offset"),
        ("0.1\t0.2\tnan\n", ":1:"),
    ],
)
def test_read_notes_malformed(tmp_path, text, where):
    p = tmp_path / "bad.txt"
    p.write_text(text)
    with pytest.raises(WbError) as exc:
        notes.read_notes(p)
    msg = str(exc.value)
    assert f"bad.txt{where}" in msg and "\n" not in msg
    with pytest.raises(WbError, match="no such note file"):
        notes.read_notes(tmp_path / "missing.txt")


def test_txt_and_csv_round_trip(tmp_path):
    est = np.array([[1.0, 1.25, 61.6], [0.123456, 0.5, 60.2]])
    notes.write_notes_txt(tmp_path / "n.txt", est)
    back = notes.read_notes(tmp_path / "n.txt")
    np.testing.assert_allclose(back, est[[1, 0]], atol=5e-5)
    notes.write_csv(tmp_path / "n.csv", est, velocities=[90, 100])
    lines = (tmp_path / "n.csv").read_text().splitlines()
    assert lines == [
        "onset_s,offset_s,midi_pitch,velocity",
        "0.1235,0.5000,60,100",
        "1.0000,1.2500,62,90",
    ]
    notes.write_csv(tmp_path / "d.csv", est)
    assert (tmp_path / "d.csv").read_text().splitlines()[1].endswith(",80")
    with pytest.raises(WbError, match="velocities"):
        notes.write_csv(tmp_path / "e.csv", est, velocities=[1, 2, 3])
    assert not (tmp_path / "e.csv").exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_write_midi_single_and_satb(tmp_path):
    import pretty_midi

    notes.write_midi(tmp_path / "one.mid", REF + [0, 0, 0.3], program=53)
    pm = pretty_midi.PrettyMIDI(str(tmp_path / "one.mid"))
    (inst,) = pm.instruments
    assert inst.program == 53
    assert [n.pitch for n in inst.notes] == [60, 62, 64]
    assert [n.velocity for n in inst.notes] == [80, 80, 80]
    np.testing.assert_allclose([[n.start, n.end] for n in inst.notes], REF[:, :2], atol=0.005)

    parts = {name: REF + [0, 0, shift] for name, shift in zip("SATB", (12, 7, 0, -12), strict=True)}
    notes.write_midi(tmp_path / "satb.mid", parts, program=52, velocities={"A": [50, 60, 70]})
    pm = pretty_midi.PrettyMIDI(str(tmp_path / "satb.mid"))
    assert [i.name for i in pm.instruments] == ["S", "A", "T", "B"]
    assert [n.pitch for n in pm.instruments[0].notes] == [72, 74, 76]
    assert [n.pitch for n in pm.instruments[3].notes] == [48, 50, 52]
    assert [n.velocity for n in pm.instruments[1].notes] == [50, 60, 70]
    with pytest.raises(WbError, match="shape"):
        notes.write_midi(tmp_path / "x.mid", np.zeros((2, 2)))


def test_notes_to_f0_and_clean_notes():
    est = np.array([[0.0, 0.3, 69.0], [0.2, 0.4, 81.0]])
    f0 = notes.notes_to_f0(est, [0.0, 0.1, 0.2, 0.35, 0.4, 1.0])
    np.testing.assert_allclose(f0, [440.0, 440.0, 880.0, 880.0, 0.0, 0.0])  # later note wins
    assert notes.notes_to_f0(notes.empty_notes(), [0.0, 1.0]).tolist() == [0.0, 0.0]

    messy = np.array(
        [[1.0, 1.5, 62.0], [0.0, 0.6, 60.0], [0.5, 0.52, 70.0], [0.55, 0.9, 61.0], [0.55, 0.8, 65]]
    )
    np.testing.assert_allclose(
        notes.clean_notes(messy, min_duration=0.03),
        [[0.0, 0.55, 60.0], [0.55, 0.9, 61.0], [1.0, 1.5, 62.0]],
    )  # 0.02 s note dropped; 60 cut at 0.55; of the two notes at 0.55 the later row wins


# ----------------------------------------------------------------------------- metrics


def _no_warnings(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


def test_note_scores_identity_and_onset_shift():
    same = _no_warnings(metrics.note_scores, REF, REF)
    assert set(same) == set(metrics.NOTE_KEYS)
    assert all(v == 1.0 for v in same.values())
    late = REF + [0.06, 0.06, 0]
    assert metrics.note_scores(REF, late)["con_f"] == 0.0
    assert metrics.note_scores(REF, late)["conpoff_f"] == 0.0
    near = REF + [0.04, 0.04, 0]  # offsets within max(0.2 * 0.4 s, 50 ms)
    assert all(v == 1.0 for v in metrics.note_scores(REF, near).values())


def test_note_scores_pitch_tolerance():
    up4 = metrics.note_scores(REF, REF + [0, 0, 0.4], round_reference=False)
    up6 = metrics.note_scores(REF, REF + [0, 0, 0.6], round_reference=False)
    assert up4["conp_f"] == 1.0 and up4["conpoff_f"] == 1.0
    assert up6["conp_f"] == 0.0 and up6["conpoff_f"] == 0.0 and up6["con_f"] == 1.0
    sung = REF + [0, 0, 0.4]  # reference sung 40 cents sharp: rounded back to 60, 62, 64
    assert metrics.note_scores(sung, REF)["conp_f"] == 1.0
    off = REF + [0, 0, 0.8]  # 80 cents from the rounded reference, 40 from the sung pitch
    assert metrics.note_scores(sung, off)["conp_f"] == 0.0
    assert metrics.note_scores(sung, off, round_reference=False)["conp_f"] == 1.0


def test_note_scores_hand_computed():
    est = np.array(
        [
            [0.52, 1.02, 60.0],  # right in every respect
            [1.21, 1.30, 62.0],  # onset and pitch right, offset 0.3 s early (> 80 ms): not Off
            [2.0, 2.5, 65.0],  # onset right, pitch a semitone off
            [3.0, 3.5, 67.0],  # extra note
        ]
    )
    s = metrics.note_scores(REF, est)
    f = lambda p, r: 2 * p * r / (p + r)  # noqa: E731
    assert s["conpoff_p"] == pytest.approx(1 / 4) and s["conpoff_r"] == pytest.approx(1 / 3)
    assert s["conpoff_f"] == pytest.approx(f(1 / 4, 1 / 3))  # 0.2857
    assert s["conp_p"] == pytest.approx(2 / 4) and s["conp_r"] == pytest.approx(2 / 3)
    assert s["conp_f"] == pytest.approx(4 / 7)  # 0.5714
    assert s["con_p"] == pytest.approx(3 / 4) and s["con_r"] == pytest.approx(1.0)
    assert s["con_f"] == pytest.approx(6 / 7)  # 0.8571


def test_scores_with_empty_lists_do_not_warn():
    empty = notes.empty_notes()
    for ref, est in ((REF, empty), (empty, REF), (empty, empty)):
        s = _no_warnings(metrics.score, ref, est)
        assert set(s) == set(metrics.NOTE_KEYS) | set(metrics.MELODY_KEYS)
        assert all(v == 0.0 for v in s.values())


def test_melody_scores_known_values():
    ref = np.array([[0.0, 1.0, 60.3]])
    assert metrics.melody_scores(ref, ref) == {
        "raw_pitch_accuracy": 1.0,
        "raw_chroma_accuracy": 1.0,
    }
    half = metrics.melody_scores(ref, [[0.0, 0.5, 60.0]])  # 30 cents off, half the frames
    assert half["raw_pitch_accuracy"] == pytest.approx(0.5)
    octave = metrics.melody_scores(ref, [[0.0, 1.0, 72.3]])
    assert octave == {"raw_pitch_accuracy": 0.0, "raw_chroma_accuracy": 1.0}
    semitone = metrics.melody_scores(ref, [[0.0, 1.0, 61.3]])
    assert semitone["raw_pitch_accuracy"] == 0.0


def test_aggregate_and_table():
    per_file = [metrics.score(REF, REF), metrics.score(REF, REF + [0.06, 0.06, 0])]
    agg = metrics.aggregate(per_file)
    assert agg["files"] == 2.0 and agg["con_f"] == pytest.approx(0.5)
    rpa = [r["raw_pitch_accuracy"] for r in per_file]
    assert agg["raw_pitch_accuracy"] == pytest.approx(np.mean(rpa))
    table = metrics.format_table({"pyin": agg, "other": {"con_f": 0.25}})
    lines = table.splitlines()
    assert lines[0].split() == ["system", "COnPOff", "F1", "COnP", "F1", "COn", "F1", "RPA", "RCA"]
    assert lines[2].split()[:4] == ["pyin", "0.500", "0.500", "0.500"]
    assert lines[3].split() == ["other", "-", "-", "0.250", "-", "-"]
    with pytest.raises(WbError):
        metrics.aggregate([])


# ----------------------------------------------------------------------------- SSVD split


def test_list_recordings_errors(tmp_path):
    with pytest.raises(WbError, match="not found"):
        ssvd.list_recordings(tmp_path / "nope")
    (tmp_path / "lonely.txt").write_text("0.1\t0.2\t60\n")
    with pytest.raises(WbError, match="no SSVD recordings"):
        ssvd.list_recordings(tmp_path)
    (tmp_path / "lonely.flac").write_bytes(b"x")
    assert ssvd.list_recordings(tmp_path) == [
        ("lonely", tmp_path / "lonely.flac", tmp_path / "lonely.txt")
    ]
    with pytest.raises(WbError, match="missing: 1078"):
        ssvd.split(tmp_path)


def test_valid_ids_constant():
    assert len(ssvd.VALID_IDS) == 15 == len(set(ssvd.VALID_IDS))
    assert ssvd.singer("man1_twinkle") == "man1" and ssvd.singer("1078") == "1078"


def _fake_ssvd(root: Path, train_ids: list[str]) -> None:
    import soundfile as sf

    root.mkdir(parents=True, exist_ok=True)
    for i in (*ssvd.VALID_IDS, *train_ids):
        sf.write(root / f"{i}.wav", np.zeros(1600, dtype=np.float32), 16000)
        (root / f"{i}.txt").write_text("0.01\t0.05\t60\n")


def test_dev_part_takes_whole_singer_groups_out_of_train(tmp_path):
    train_ids = ["2001", "2002", "2003", "2004", "man7_a", "man7_b", "man7_c", "man8_a"]
    _fake_ssvd(tmp_path, train_ids)
    plain = ssvd.split(tmp_path)
    assert [r[0] for r in plain["train"]] == sorted(train_ids) and plain["dev"] == []
    for n in (1, 3, 4):
        parts = ssvd.split(tmp_path, dev=n)
        dev, train = [r[0] for r in parts["dev"]], [r[0] for r in parts["train"]]
        assert len(dev) == n and sorted(dev + train) == sorted(train_ids)
        assert not {ssvd.singer(i) for i in dev} & {ssvd.singer(i) for i in train}
        assert [r[0] for r in parts["valid"]] == list(ssvd.VALID_IDS)
        assert parts == ssvd.split(tmp_path, dev=n)  # fixed, not drawn anew
    for bad in (-1, len(train_ids)):
        with pytest.raises(WbError, match="ssvd_dev"):
            ssvd.split(tmp_path, dev=bad)


def test_take_groups_with_seed_0_redraws_the_validation_ids():
    if not SSVD_ROOT.is_dir():
        pytest.skip(f"{SSVD_ROOT} absent")
    ids = [r[0] for r in ssvd.list_recordings(SSVD_ROOT)]
    assert ssvd.take_groups(ids, 15, 0) == sorted(ssvd.VALID_IDS)


def test_ssvd_dev_recordings_become_the_validation_windows(tmp_path):
    from music.transcription.model import Transcriber
    from music.transcription.train import VoiceDataModule, train_settings
    from wb.errors import ConfigError

    _fake_ssvd(tmp_path / "ssvd", ["2001", "2002", "2003"])
    model = Transcriber(d_model=32, ff=64, encoder_layers=1, decoder_layers=1, n_heads=2)
    settings = train_settings({"train": {"samples_per_epoch": 4}})
    dm = VoiceDataModule({"ssvd": str(tmp_path / "ssvd"), "ssvd_weight": 1.0, "ssvd_dev": 1},
                         settings, model)  # fmt: skip
    dm.setup("fit")
    dev = {r.name for r in dm.valid_set.groups[0]}
    train = {r.name for g in dm.train_set.groups for r in g}
    assert len(dev) == 1 and train == {"2001", "2002", "2003"} - dev
    with pytest.raises(ConfigError, match="needs data.ssvd"):
        VoiceDataModule({"synthetic": str(tmp_path), "ssvd_dev": 2}, settings, model).setup()


def test_real_split_is_disjoint():
    if not SSVD_ROOT.is_dir():
        pytest.skip(f"{SSVD_ROOT} absent")
    parts = ssvd.split(SSVD_ROOT)
    train = {r[0] for r in parts["train"]}
    valid = [r[0] for r in parts["valid"]]
    assert valid == list(ssvd.VALID_IDS)
    assert len(train) == 52 and not train & set(valid)
    assert not {ssvd.singer(i) for i in train} & {ssvd.singer(i) for i in valid}
    for _, audio, txt in parts["train"] + parts["valid"]:
        assert audio.is_file() and txt.is_file()


# ----------------------------------------------------------------------------- baselines


def _sung_tones(pitches, sr=16000, dur=0.4, gap=0.05, lead=0.2):
    """Harmonic tones with 20 ms fades and light vibrato, ``gap`` seconds apart."""
    rng = np.random.default_rng(0)
    parts, truth, t0 = [np.zeros(int(lead * sr))], [], lead
    for m in pitches:
        t = np.arange(int(dur * sr)) / sr
        f = 440 * 2 ** ((m - 69 + 0.1 * np.sin(2 * np.pi * 5.5 * t)) / 12)
        phase = 2 * np.pi * np.cumsum(f) / sr
        y = sum(0.3 / k * np.sin(k * phase) for k in range(1, 6))
        parts += [y * np.minimum(1, np.minimum(t, dur - t) / 0.02), np.zeros(int(gap * sr))]
        truth.append((t0, t0 + dur, m))
        t0 += dur + gap
    parts.append(np.zeros(int(lead * sr)))
    y = np.concatenate(parts) + 1e-3 * rng.standard_normal(sum(map(len, parts)))
    return y.astype(np.float32), np.array(truth, dtype=float)


def test_pyin_notes_recovers_tone_sequence():
    y, truth = _sung_tones([57, 62, 66])
    est = baselines.pyin_notes(y, 16000)
    assert est[:, 2].tolist() == [57.0, 62.0, 66.0]
    np.testing.assert_allclose(est[:, 0], truth[:, 0], atol=0.05)
    assert metrics.note_scores(truth, est)["conp_f"] == 1.0


def test_pyin_edge_cases():
    assert baselines.pyin_notes(np.zeros(0), 16000).shape == (0, 3)
    assert baselines.pyin_notes(np.zeros(8000), 16000).shape == (0, 3)
    with pytest.raises(AudioError, match="1-D"):
        baselines.pyin_notes(np.zeros((2, 100)), 16000)
    # segmentation alone: a run that steps up 2 semitones and stays is split there
    midi = np.r_[np.full(30, 60.1), np.full(30, 62.0), np.full(5, np.nan), np.full(10, 64.0)]
    got = baselines.segment_notes(
        midi, np.isfinite(midi), hop=0.01, stay_frames=5, min_duration=0.06
    )
    np.testing.assert_allclose(got, [[0.0, 0.3, 60], [0.3, 0.6, 62], [0.65, 0.75, 64]])


def test_basic_pitch_missing_is_a_dependency_error(tmp_path):
    if baselines.basic_pitch_available():
        pytest.skip("basic-pitch is installed")
    with pytest.raises(DependencyError, match="pip install"):
        baselines.basic_pitch_notes(tmp_path / "x.wav")
