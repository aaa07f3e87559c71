"""The corpus style set: candidates and groups per style, one excerpt rendered, the recipe's
prepare stage, and the folder adapter's work/composer groups from the file names."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from music.styles import STYLES, candidates, prepare_styles, render_excerpt


def test_every_style_has_enough_works_and_quartets_group_by_composer():
    for style in STYLES:
        works = candidates(style)
        assert len(works) >= 36, style
        assert len({w for _, w, _, _ in works}) == len(works), style  # unique work ids
    groups = {g for g, _, _, _ in candidates("string_quartet")}
    assert groups == {"haydn", "mozart", "beethoven"}
    with pytest.raises(Exception, match="unknown style"):
        candidates("jazz")


def test_render_excerpt_repeats_short_works_to_the_length(tmp_path):
    parts = [[(60, 0.0, 1.0), (64, 1.0, 1.0)], [(48, 0.0, 2.0)]]  # 2 quarter notes long
    meta = render_excerpt(parts, tmp_path / "x.wav", seed=3, sample_rate=8000, seconds=4.0)
    x, sr = sf.read(tmp_path / "x.wav")
    assert sr == 8000 and len(x) == 32000 and abs(np.abs(x).max() - 0.9) < 1e-4
    assert np.abs(x[-8000:]).max() > 0.05  # the work repeats: the last second is not silent
    assert len(meta["programs"]) == 2 and 60 <= meta["bpm"] <= 140


def test_render_excerpt_offset_starts_later_in_the_work(tmp_path):
    import librosa

    parts = [[(57, 0.0, 1.0), (69, 1.0, 1.0)]]  # A3 for one quarter, then A4
    meta = render_excerpt(parts, tmp_path / "a.wav", seed=5, sample_rate=8000, seconds=2.0)
    quarter = 60.0 / meta["bpm"]
    render_excerpt(parts, tmp_path / "b.wav", seed=5, sample_rate=8000, seconds=2.0,
                   offset=quarter)  # fmt: skip

    def first_pitch(name: str) -> float:
        x, sr = sf.read(tmp_path / name)
        f0 = librosa.yin(x[: int(0.25 * sr)], fmin=100, fmax=1000, sr=sr, frame_length=1024)
        return float(np.median(librosa.hz_to_midi(f0)))

    shift = meta["transpose"]
    assert abs(first_pitch("a.wav") - (57 + shift)) < 0.5
    assert abs(first_pitch("b.wav") - (69 + shift)) < 0.5


def test_renditions_add_files_in_the_works_group(tmp_path):
    from classify.datasets import get_dataset

    one = prepare_styles(tmp_path, per_class=2, styles=["fiddle_tune"], seconds=2.0, jobs=1,
                         quiet=True)  # fmt: skip
    before = {p.name: p.read_bytes() for p in (tmp_path / "fiddle_tune").glob("*.wav")}
    two = prepare_styles(tmp_path, per_class=2, styles=["fiddle_tune"], seconds=2.0, jobs=1,
                         quiet=True, renditions=2)  # fmt: skip
    assert one == {"fiddle_tune": 2} and two == {"fiddle_tune": 4}
    after = {p.name: p.read_bytes() for p in (tmp_path / "fiddle_tune").glob("*.wav")}
    assert all(after[name] == data for name, data in before.items())  # rendition 0 kept
    new = sorted(set(after) - set(before))
    assert len(new) == 2 and all(name.endswith("__1.wav") for name in new)
    other = tmp_path / "other"
    other.mkdir()
    sf.write(other / "x__0.wav", np.zeros(800, dtype=np.float32), 8000)  # a second class
    ds = get_dataset("folder", tmp_path, folds=2, group_regex="^(.+?)__")
    groups = [c.group for c in ds.clips if c.label == ds.classes.index("fiddle_tune")]
    assert len(set(groups)) == 2 and all(groups.count(g) == 2 for g in groups)
    with pytest.raises(Exception, match="renditions"):
        prepare_styles(tmp_path, per_class=1, styles=["fiddle_tune"], renditions=0)


def test_prepare_and_folder_groups(tmp_path):
    from classify.datasets import get_dataset

    counts = prepare_styles(tmp_path, per_class=2, styles=["fiddle_tune", "monteverdi"],
                            seconds=2.0, jobs=1, quiet=True)  # fmt: skip
    assert counts == {"fiddle_tune": 2, "monteverdi": 2}
    assert (
        prepare_styles(
            tmp_path,
            per_class=2,
            styles=["fiddle_tune", "monteverdi"],
            seconds=2.0,
            jobs=1,
            quiet=True,
        )
        == counts
    )  # fmt: skip  (resumable)
    ds = get_dataset("folder", tmp_path, folds=2, group_regex="^(.+?)__")
    assert ds.classes == ["fiddle_tune", "monteverdi"] and len(ds.clips) == 4
    assert all(c.group and "__" not in c.group for c in ds.clips)


def test_recipe_train_forwards_to_wb_classify(tmp_path, capsys):
    import json

    from recipes.corpus_style.__main__ import main

    data = tmp_path / "styles"
    assert main(["prepare", "-q", "--root", str(data), "--set", "per_class=2",
                 "--set", "seconds=2.0", "--set", "excerpts_per_class=2"]) == 0  # fmt: skip
    assert sum(1 for _ in data.glob("*/*.wav")) == 14  # 2 works x 1 excerpt x 7 styles
    out = tmp_path / "run"
    argv = ["train", "--data-dir", str(data), "--epochs", "1", "--out", str(out),
            "--set", "dataset_options.folds=2", "--set", f"cache_dir={tmp_path / 'cache'}",
            "--set", "frontend.n_mels=32", "--set", "data.seconds=1.0",
            "--set", "data.hop_seconds=0.5", "--set", "model.cnn.widths=[4]",
            "--set", "train.batch_size=4", "--set", "train.threads=1"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "folder" and len(metrics["folds"]) == 2
    assert len(json.loads((out / "details.json").read_text())["classes"]) == 7


def test_excerpts_per_class_spreads_a_quota_over_works(tmp_path, monkeypatch):
    """E excerpts over min(per_class, E, works) works: E // n renditions each, the first E % n
    one more; a work that fails is replaced, and when replacements run out the works that
    rendered take its share, so every class still gets E."""
    import music.styles as styles

    counts = prepare_styles(tmp_path / "a", per_class=3, styles=["fiddle_tune"], seconds=1.0,
                            jobs=1, quiet=True, excerpts_per_class=5)  # fmt: skip
    assert counts == {"fiddle_tune": 5}
    names = sorted(p.name for p in (tmp_path / "a" / "fiddle_tune").glob("*.wav"))
    per_work: dict[str, int] = {}
    for name in names:
        work = name.rsplit("__", 1)[0]
        per_work[work] = per_work.get(work, 0) + 1
    assert sorted(per_work.values()) == [1, 2, 2] and len(names) == 5
    # the same works as a set without the quota (3 works x 1 rendition)
    prepare_styles(tmp_path / "b", per_class=3, styles=["fiddle_tune"], seconds=1.0, jobs=1,
                   quiet=True)  # fmt: skip
    plain = {p.name for p in (tmp_path / "b" / "fiddle_tune").glob("*.wav")}
    assert len(plain) == 3 and plain <= set(names)

    works = candidates("fiddle_tune")[:3]
    broken = (works[0][0], works[0][1], "/nonexistent/tune.abc", None)
    monkeypatch.setattr(styles, "candidates", lambda style: [broken, *works[1:]])
    counts = prepare_styles(tmp_path / "c", per_class=3, styles=["fiddle_tune"], seconds=1.0,
                            jobs=1, quiet=True, excerpts_per_class=5)  # fmt: skip
    assert counts == {"fiddle_tune": 5}
    assert len(list((tmp_path / "c" / "fiddle_tune").glob("*.wav"))) == 5  # 2 works: 3 + 2

    with pytest.raises(Exception, match="choose one"):
        prepare_styles(tmp_path, styles=["fiddle_tune"], renditions=2, excerpts_per_class=4)
    with pytest.raises(Exception, match="at least 1"):
        prepare_styles(tmp_path, styles=["fiddle_tune"], excerpts_per_class=0)


def _strip_ties_reference(flat) -> list[tuple[int, float, float]]:
    """What ``_parts`` read before ``tied_notes``: music21's own ``stripTies``."""
    out = []
    for n in flat.stripTies(matchByPitch=True).notes:
        if n.quarterLength > 0:
            out.extend((int(p.midi), float(n.offset), float(n.quarterLength)) for p in n.pitches)
    return out


def _stream(events):
    """A flat music21 stream of ``(kind, pitches, quarter length, tie type)`` in order."""
    from music21 import chord, note, stream, tie

    s = stream.Stream()
    for kind, pitches, ql, tie_type in events:
        if kind == "rest":
            el = note.Rest(quarterLength=ql)
        elif kind == "chord":
            el = chord.Chord(pitches, quarterLength=ql)
        else:
            el = note.Note(pitches[0], quarterLength=ql)
        if tie_type and kind != "rest":
            el.tie = tie.Tie(tie_type)
        s.append(el)
    return s


@pytest.mark.parametrize(
    "events",
    [
        # start, continue, stop: one note of 3 quarters, then a plain note
        [("n", ["C4"], 1, "start"), ("n", ["C4"], 1, "continue"), ("n", ["C4"], 1, "stop"),
         ("n", ["D4"], 1, None)],
        # a start without a stop still takes the next note of its pitch, not the one after
        [("n", ["E4"], 2, "start"), ("n", ["E4"], 2, None), ("n", ["E4"], 1, None)],
        # a start followed by another pitch: nothing merged
        [("n", ["E4"], 2, "start"), ("n", ["F4"], 2, None), ("n", ["E4"], 1, "stop")],
        # tied chords, a rest, a grace note (zero length, left out)
        [("chord", ["C4", "E4", "G4"], 1, "start"), ("chord", ["C4", "E4", "G4"], 2, "stop"),
         ("rest", [], 1, None), ("n", ["A4"], 0, None), ("n", ["A4"], 1, None)],
        # a chord tied into a chord of other size, then a lone stop
        [("chord", ["C4", "E4"], 1, "start"), ("chord", ["C4", "E4", "G4"], 1, None),
         ("n", ["B3"], 1, "stop")],
        # continue that does not match its predecessor starts a new run
        [("n", ["G4"], 1, "start"), ("n", ["A4"], 1, "continue"), ("n", ["A4"], 2, "stop")],
    ],
)  # fmt: skip
def test_tied_notes_agrees_with_music21_strip_ties(events):
    from music.styles import tied_notes

    flat = _stream(events)
    assert tied_notes(flat) == _strip_ties_reference(flat)


def test_tied_notes_agrees_on_a_corpus_chorale():
    """A real score: every part of BWV 66.6 (ties across bar lines) as stripTies reads it."""
    from music21 import corpus

    from music.styles import tied_notes

    score = corpus.parse("bach/bwv66.6")
    merged = 0
    for part in score.parts:
        flat = part.flatten()
        got = tied_notes(flat)
        assert got == _strip_ties_reference(flat)
        merged += len(flat.notes) - len(got)
    assert merged == 2  # soprano F#4 and tenor C#4 are tied across a beat
