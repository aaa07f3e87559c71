"""Synthetic "songs" for offline tests of music separation: a custom stems folder
``<root>/<split>/<song>/{mixture,vocals,drums,bass,other}.wav`` rendered with FluidSynth.

**Synthetic, for the pipeline only.** These are Bach chorales dressed as band music: the
soprano becomes a lead voice (a voice-like General MIDI program), the alto and tenor a
chordal part (piano, electric piano, guitar, organ or strings) restruck on every beat, the
bass line an electric bass an octave down when it sits high, and a generated rock/pop drum
pattern on MIDI channel 10 (kick, snare, hi-hat, crashes). Tempo, transposition, programs,
gains and the drum pattern are drawn per song from a seeded generator. No model trained on
them says anything about real songs; they exist so that ``recipes.music_separation --quick``
and CI run end to end without MUSDB18.

Splits follow the chorale data set: test holds the held-out works (``heldout_chorales.txt``)
and every other harmonisation of their tunes; valid a hashed share of the rest.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from music.synth import TimedNote, render_midi, write_midi
from wb.errors import ConfigError, WbError

STEMS = ("vocals", "drums", "bass", "other")
VOCAL_PROGRAMS = (52, 53, 54, 85)  # Choir Aahs, Voice Oohs, Synth Voice, Lead 6 (voice)
CHORD_PROGRAMS = (0, 4, 16, 24, 25, 48)  # piano, e-piano, organ, nylon/steel guitar, strings
BASS_PROGRAMS = (32, 33, 34, 38)  # acoustic, fingered, picked, synth bass
KICK, SNARE, HAT, OPEN_HAT, CRASH = 36, 38, 42, 46, 49


def _notes(part: Sequence[Sequence[float]], spq: float, shift: int, vel: int,
           rng: np.random.Generator, limit: float) -> list[TimedNote]:  # fmt: skip
    """Chorale notes ``[pitch, onset_ql, dur_ql, fermata]`` in seconds (``spq`` seconds per
    quarter note), transposed by ``shift``, cut at ``limit`` seconds."""
    out = []
    for pitch, onset, dur, _ in part:
        start, end = onset * spq, (onset + dur) * spq
        if start >= limit:
            break
        v = int(np.clip(vel + rng.integers(-8, 9), 1, 127))
        out.append(TimedNote(int(pitch) + shift, start, min(end, limit) - 0.01, v))
    return out


def _restruck(notes: list[TimedNote], spq: float) -> list[TimedNote]:
    """Notes longer than a beat split into one note per beat (a comping instrument)."""
    out = []
    for n in notes:
        t = n.start
        while n.end - t > spq * 1.01:
            out.append(TimedNote(n.pitch, t, t + spq * 0.9, n.velocity))
            t += spq
        out.append(TimedNote(n.pitch, t, n.end, n.velocity))
    return out


def drum_pattern(seconds: float, spq: float, rng: np.random.Generator) -> list[TimedNote]:
    """A 4/4 pattern: kick on 1 and 3 (sometimes on the "and" of 3), snare on 2 and 4,
    closed hi-hat on eighths (or quarters), an open hi-hat at the end of some bars and a crash
    every fourth bar; velocities jittered."""
    eighths = rng.random() < 0.7
    extra_kick = rng.random() < 0.5
    notes = []
    bar = 4 * spq
    for b in range(int(np.ceil(seconds / bar))):
        t0 = b * bar

        def hit(pitch: int, beat: float, vel: int, t0: float = t0) -> None:
            t = t0 + beat * spq
            if t < seconds - 0.05:
                v = int(np.clip(vel + rng.integers(-10, 11), 1, 127))
                notes.append(TimedNote(pitch, t, min(t + 0.1, seconds), v))

        hit(KICK, 0, 100)
        hit(KICK, 2, 95)
        if extra_kick:
            hit(KICK, 2.5, 80)
        hit(SNARE, 1, 95)
        hit(SNARE, 3, 100)
        for k in range(8 if eighths else 4):
            hit(HAT, k * (0.5 if eighths else 1.0), 70 if k % 2 else 80)
        if rng.random() < 0.25:
            hit(OPEN_HAT, 3.5, 75)
        if b % 4 == 0:
            hit(CRASH, 0, 90)
    return notes


def render_song(work: Mapping[str, Any], folder: str | os.PathLike, sample_rate: int = 16000,
                seed: int = 0, max_seconds: float | None = 20.0,
                soundfont: str = "/usr/share/sounds/sf2/FluidR3_GM.sf2",
                peak: float = 0.9) -> dict[str, Any]:  # fmt: skip
    """Render one song into ``folder`` (``mixture.wav`` = the exact sum of the 4 stems,
    float32 WAV, mono, joint peak ``peak``).

    Args:
        work: an extracted chorale (:func:`music.chorale_corpus.extract_work`).
        folder: destination folder (created).
        sample_rate: Hz.
        seed: the song's seed (tempo, key, programs, gains, drum pattern).
        max_seconds: cut the song to this length (``None``: whole chorale).
        soundfont: General MIDI sound font.
        peak: joint peak level of the mixture and stems.

    Returns:
        ``meta.json`` content: programs, tempo, transposition, gains in dB, duration.

    Raises:
        DependencyError: FluidSynth or the sound font missing; WbError: a render failed.
    """
    import soundfile as sf

    rng = np.random.default_rng(seed)
    bpm = float(rng.uniform(80, 130))
    spq = 60.0 / bpm
    parts = work["parts"]
    length = float(work["length_ql"]) * spq
    limit = min(length, max_seconds) if max_seconds else length
    shift = int(rng.integers(-3, 4))
    programs = {"vocals": int(rng.choice(VOCAL_PROGRAMS)), "other": int(rng.choice(CHORD_PROGRAMS)),
                "bass": int(rng.choice(BASS_PROGRAMS)), "drums": 0}  # fmt: skip
    bass = parts["bass"]
    octave = -12 if np.mean([n[0] for n in bass]) + shift > 45 else 0
    lines = {
        "vocals": _notes(parts["soprano"], spq, shift, 90, rng, limit),
        "other": _restruck(_notes(parts["alto"], spq, shift, 70, rng, limit)
                           + _notes(parts["tenor"], spq, shift, 70, rng, limit), spq),
        "bass": _restruck(_notes(bass, spq, shift + octave, 85, rng, limit), spq),
        "drums": drum_pattern(limit, spq, rng),
    }  # fmt: skip
    n = int(round((limit + 0.5) * sample_rate))
    gains = {s: float(rng.uniform(-4.0, 2.0)) for s in STEMS}
    stems = np.zeros((len(STEMS), n), np.float32)
    with tempfile.TemporaryDirectory(prefix="wb-song-") as tmp:
        for k, stem in enumerate(STEMS):
            mid = Path(tmp) / f"{stem}.mid"
            write_midi(lines[stem], mid, programs[stem], bpm, stem, is_drum=stem == "drums")
            x = render_midi(mid, Path(tmp) / f"{stem}.wav", sample_rate, soundfont, reverb=False)
            m = min(n, len(x))
            stems[k, :m] = x[:m] * np.float32(10 ** (gains[stem] / 20))
    mixture = stems.sum(axis=0)
    top = float(max(np.abs(stems).max(), np.abs(mixture).max()))
    if top <= 0:
        raise WbError(f"{work['name']}: the song rendered silent")
    scale = np.float32(peak / top)
    stems *= scale
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for k, stem in enumerate(STEMS):
        sf.write(folder / f"{stem}.wav", stems[k], sample_rate, subtype="FLOAT")
    sf.write(folder / "mixture.wav", stems.sum(axis=0), sample_rate, subtype="FLOAT")
    return {"work": work["name"], "synthetic": True, "bpm": bpm, "transpose": shift,
            "programs": programs, "gains_db": gains, "seconds": n / sample_rate}  # fmt: skip


def prepare_songs(
    root: str | os.PathLike,
    sample_rate: int = 16000,
    songs: Mapping[str, int] | None = None,
    max_seconds: float | None = 20.0,
    seed: int = 0,
    soundfont: str = "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    heldout: str | os.PathLike = "../shared/heldout_chorales.txt",
    cache_dir: str | os.PathLike | None = None,
    quiet: bool | None = None,
) -> dict[str, int]:
    """Render the synthetic song set: ``root/<split>/<work>/{mixture,<stems>}.wav`` with a
    ``meta.json`` per song and ``root/SYNTHETIC.txt`` saying what it is.

    Args:
        root: output folder; songs already there are kept (the render is resumable).
        sample_rate: Hz.
        songs: how many songs per split, e.g. ``{"train": 8, "valid": 2, "test": 2}`` (the
            first works of each split by name); ``None``: every usable work.
        max_seconds: length of each song (``None``: the whole chorale).
        seed: global seed; a song's seed derives from it and the work's name.
        soundfont: General MIDI sound font.
        heldout: the held-out works file (test split).
        cache_dir: music21 parse cache root.
        quiet: no progress bar.

    Returns:
        ``{split: songs rendered or present}``.

    Raises:
        ConfigError: bad ``songs``; DependencyError / WbError from rendering.
    """
    import json
    import zlib

    from music.chorale_corpus import assign_splits, corpus_works, load_works, read_heldout
    from music.chorales.prepare import resolve_heldout
    from wb.progress import progress

    root = Path(root)
    paths = corpus_works()
    works = load_works(list(paths), paths, cache_dir=cache_dir, jobs=os.cpu_count() or 1,
                       quiet=quiet)  # fmt: skip
    splits, _ = assign_splits(works, read_heldout(resolve_heldout(heldout)))
    chosen: dict[str, list[str]] = {}
    for split in ("train", "valid", "test"):
        names = sorted(w for w, s in splits.items() if s == split)
        count = None if songs is None else songs.get(split, 0)
        if count is not None and (not isinstance(count, int) or count < 0):
            raise ConfigError(f"songs.{split} must be a non-negative integer, got {count!r}")
        chosen[split] = names[:count] if count is not None else names
    root.mkdir(parents=True, exist_ok=True)
    (root / "SYNTHETIC.txt").write_text(
        "Synthetic songs rendered by wb (music/songs.py) from Bach chorales with FluidSynth:\n"
        "a pipeline test set. Never quote quality figures from it as music separation results.\n"
    )
    jobs = [(s, w) for s, names in chosen.items() for w in names]
    for split, name in progress(jobs, desc="rendering songs", unit="song", quiet=quiet):
        dest = root / split / name.replace("/", "_")
        if (dest / "meta.json").is_file():
            continue
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=root))
        try:
            song_seed = zlib.crc32(f"{seed}:{name}".encode())
            meta = render_song(works[name], tmp, sample_rate, song_seed, max_seconds, soundfont)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return {s: len(v) for s, v in chosen.items()}
