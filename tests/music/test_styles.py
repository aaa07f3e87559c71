"""The corpus style set: candidates and groups per style, one excerpt rendered, the recipe's
prepare stage, and the folder adapter's work/composer groups from the file names."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from music.styles import STYLES, candidates, prepare_styles, render_excerpt
from wb.errors import WbError


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
            "--set", "frontend.bins_per_octave=4", "--set", "data.seconds=1.0",
            "--set", "data.hop_seconds=0.5", "--set", "model.cnn.widths=[4]",
            "--set", "train.batch_size=4", "--set", "train.threads=1"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "folder" and len(metrics["folds"]) == 2
    assert len(json.loads((out / "details.json").read_text())["classes"]) == 7
    # the stages that read runs and model files are forwarded without the data defaults
    capsys.readouterr()
    assert main(["table", str(out)]) == 0, capsys.readouterr().err
    assert str(out.name) in capsys.readouterr().out
    wav = next(data.glob("bach_chorale/*.wav"))
    assert main(["predict", str(wav), "--checkpoint", str(out / "model.pt")]) == 0, (
        capsys.readouterr().err
    )
    assert wav.name in capsys.readouterr().out


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
    """A flat music21 stream of ``(kind, pitches, quarter length, tie type)`` in order
    (kind ``n``, ``chord`` or ``rest``; rests can carry ties too, as music21 allows)."""
    from music21 import chord, note, stream, tie

    s = stream.Stream()
    for kind, pitches, ql, tie_type in events:
        if kind == "rest":
            el = note.Rest()
        elif kind == "chord":
            el = chord.Chord(pitches)
        else:
            el = note.Note(pitches[0])
        el.quarterLength = ql  # 0: a note of no duration, like a grace note
        if tie_type:
            el.tie = tie.Tie(tie_type)
        s.append(el)
    return s


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        # start, continue, stop: one note of 3 quarters, then a plain note
        ([("n", ["C4"], 1, "start"), ("n", ["C4"], 1, "continue"), ("n", ["C4"], 1, "stop"),
          ("n", ["D4"], 1, None)],
         [(60, 0.0, 3.0), (62, 3.0, 1.0)]),
        # a start without a stop still takes the next note of its pitch, not the one after
        ([("n", ["E4"], 2, "start"), ("n", ["E4"], 2, None), ("n", ["E4"], 1, None)],
         [(64, 0.0, 4.0), (64, 4.0, 1.0)]),
        # a start, another pitch, then a stop: the stop closes the stale run, so the E4 at
        # 4.0 is merged into the first one (music21's rule; F4 stays)
        ([("n", ["E4"], 2, "start"), ("n", ["F4"], 2, None), ("n", ["E4"], 1, "stop")],
         [(64, 0.0, 3.0), (65, 2.0, 2.0)]),
        # tied chords, a rest, a note of no duration (left out), a plain note
        ([("chord", ["C4", "E4", "G4"], 1, "start"), ("chord", ["C4", "E4", "G4"], 2, "stop"),
          ("rest", [], 1, None), ("n", ["A4"], 0, None), ("n", ["A4"], 1, None)],
         [(60, 0.0, 3.0), (64, 0.0, 3.0), (67, 0.0, 3.0), (69, 4.0, 1.0)]),
        # a chord tied into a chord of another size is not merged; a note's stop then
        # closes the stale run and joins the first chord
        ([("chord", ["C4", "E4"], 1, "start"), ("chord", ["C4", "E4", "G4"], 1, None),
          ("n", ["B3"], 1, "stop")],
         [(60, 0.0, 2.0), (64, 0.0, 2.0), (60, 1.0, 1.0), (64, 1.0, 1.0), (67, 1.0, 1.0)]),
        # a continue that does not match its predecessor starts a new run
        ([("n", ["G4"], 1, "start"), ("n", ["A4"], 1, "continue"), ("n", ["A4"], 2, "stop")],
         [(67, 0.0, 1.0), (69, 1.0, 3.0)]),
        # chords match by step and enharmonic pitch: C#/E ties into C#/E, not into D-/E
        ([("chord", ["C#4", "E4"], 1, "start"), ("chord", ["C#4", "E4"], 1, None),
          ("chord", ["C#4", "E4"], 1, "start"), ("chord", ["D-4", "E4"], 1, None)],
         [(61, 0.0, 2.0), (64, 0.0, 2.0), (61, 2.0, 1.0), (64, 2.0, 1.0), (61, 3.0, 1.0),
          (64, 3.0, 1.0)]),
        # triplets add up exactly: three tied eighth-note triplets make one quarter
        ([("n", ["D4"], 1 / 3, "start"), ("n", ["D4"], 1 / 3, "continue"),
          ("n", ["D4"], 1 / 3, "stop")],
         [(62, 0.0, 1.0)]),
    ],
)  # fmt: skip
def test_tied_notes_known_answers_agree_with_music21(events, expected):
    from music.styles import tied_notes

    flat = _stream(events)
    assert tied_notes(flat) == expected
    assert _strip_ties_reference(flat) == expected


def test_tied_notes_agrees_with_strip_ties_on_random_streams():
    """400 seeded random streams: notes, chords (with enharmonic spellings) and rests, any
    tie type on any of them, triplet and zero durations."""
    from music.styles import tied_notes

    rng = np.random.default_rng(7)
    pitches = ["C#4", "D-4", "D4", "E4"]
    durations = [0.0, 1 / 3, 2 / 3, 0.5, 1.0, 2.0]
    ties = [None, None, "start", "continue", "stop"]
    merged = 0
    for _ in range(400):
        events = []
        for _ in range(int(rng.integers(1, 12))):
            kind = ["n", "n", "chord", "rest"][int(rng.integers(4))]
            chosen = [pitches[int(k)] for k in rng.choice(4, 2 if kind == "chord" else 1,
                                                            replace=False)]  # fmt: skip
            tie_type = ties[int(rng.integers(len(ties)))]
            events.append((kind, chosen, durations[int(rng.integers(len(durations)))], tie_type))
        flat = _stream(events)
        got = tied_notes(flat)
        assert got == _strip_ties_reference(flat), events
        merged += sum(len(n.pitches) for n in flat.notes if n.quarterLength > 0) - len(got)
    assert merged > 100  # the streams do exercise the merging


def test_tied_notes_refuses_a_stream_with_measures():
    from music21 import corpus

    from music.styles import tied_notes

    with pytest.raises(WbError, match="flat stream"):
        tied_notes(corpus.parse("bach/bwv66.6").parts[0])


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
