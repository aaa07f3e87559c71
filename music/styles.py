"""An offline genre set from the music21 corpus: works grouped by style, rendered with
FluidSynth into a folder of 30 s excerpts, ``<style>/<group>__<work>[__<k>].wav``, or
``<style>/<work>__<k>.wav`` for a work that is its own group (``recipes.corpus_style``;
``k`` numbers the renditions, :func:`excerpt_name`).

Styles (``prepare_styles``' ``per_class`` works per style at most, ``CLASS_SIZE`` by default;
the recipe's ``conf.yml`` asks for 324 excerpts per style):

==================  =====================================================================
``bach_chorale``    Bach four-part chorales
``palestrina``      Palestrina mass movements (Humdrum)
``monteverdi``      Monteverdi madrigals
``trecento``        Italian Trecento polyphony
``string_quartet``  Haydn, Mozart and Beethoven string quartet movements
``essen_folk``      German folk songs of the Essen collection (monophonic)
``fiddle_tune``     Ryan's Mammoth Collection fiddle tunes (monophonic)
==================  =====================================================================

Every part gets a random General MIDI program from one pool shared by all styles, a random
sound font (FluidR3 or TimGM6mb), tempo and transposition, so timbre does not give the class
away. The file name's ``<group>`` keeps works whole across folds (and composers whole for the
string quartets, the one multi-composer class): give the folder adapter
``group_regex: '^(.+?)__'``.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wb.errors import ConfigError, WbError

STYLES: dict[str, dict[str, Any]] = {
    "bach_chorale": {"composers": ["bach"], "exts": [".mxl"], "min_parts": 4},
    "palestrina": {"composers": ["palestrina"], "exts": [".krn"]},
    "monteverdi": {"composers": ["monteverdi"], "exts": [".mxl"]},
    "trecento": {"composers": ["trecento"], "exts": [".xml", ".mxl"]},
    "string_quartet": {"composers": ["haydn", "mozart", "beethoven"], "exts": [".mxl", ".krn"],
                       "min_parts": 4, "group_by_composer": True},
    "essen_folk": {"composers": ["essenFolksong"], "exts": [".abc"], "opus": True},
    "fiddle_tune": {"composers": ["ryansMammoth"], "exts": [".abc"]},
}  # fmt: skip
#: General MIDI programs every style draws its parts from (0-based).
PROGRAMS = (0, 6, 19, 24, 40, 41, 42, 48, 52, 56, 68, 70, 71, 73)
SOUNDFONTS = ("fluidr3", "timgm6mb")
CLASS_SIZE = 36


def candidates(style: str) -> list[tuple[str, str, str, int | None]]:
    """``(group, work, corpus path, opus index or None)`` of every work of ``style``, sorted;
    ``group`` is the work itself, or its composer for the string quartets.

    Collections of tunes (Essen) count each of their first 40 tunes as a work, from their
    first 4 files (parsing a collection takes about 20 s).

    Raises:
        ConfigError: unknown style.
    """
    from music21 import corpus

    if style not in STYLES:
        raise ConfigError(f"unknown style {style!r} (choose from {', '.join(STYLES)})")
    spec = STYLES[style]
    out = []
    for composer in spec["composers"]:
        paths = [p for p in sorted(str(x) for x in corpus.getComposer(composer))
                 if Path(p).suffix.lower() in spec["exts"]]  # fmt: skip
        if spec.get("opus"):
            paths = paths[:4]
        for p in paths:
            work = re.sub(r"[^A-Za-z0-9.#-]+", "_", p.split("/corpus/")[-1])
            group = composer if spec.get("group_by_composer") else work
            if spec.get("opus"):
                out += [(f"{group}#{k}", f"{work}#{k}", p, k) for k in range(40)]
            else:
                out.append((group, work, p, None))
    return out


@functools.lru_cache(maxsize=4)
def _parse(path: str):
    """A corpus file parsed once per process (collections of tunes are slow to parse)."""
    from music21 import converter

    return converter.parse(path)


def _score(path: str, opus: int | None):
    """The parsed work: the file's score, or score ``opus`` of a collection (None when the
    collection has fewer)."""
    score = _parse(path)
    if opus is None:
        return score
    scores = list(score.scores)
    return scores[opus] if opus < len(scores) else None


def _parts(path: str, opus: int | None) -> list[list[tuple[int, float, float]]]:
    """Notes ``(pitch, onset_ql, dur_ql)`` of every part (chords split into notes)."""
    score = _score(path, opus)
    if score is None:
        return []
    parts = []
    for part in score.parts if hasattr(score, "parts") and len(score.parts) else [score]:
        notes = tied_notes(part.flatten())
        if notes:
            parts.append(sorted(notes, key=lambda x: x[1]))
    return parts


def tied_notes(flat) -> list[tuple[int, float, float]]:
    """``(MIDI pitch, onset, duration)`` of the notes of a flat music21 stream, chords split
    into their pitches and tied notes merged (onset and duration in quarter lengths; notes
    of zero duration, i.e. grace notes, left out).

    The notes of music21's ``flat.stripTies(matchByPitch=True)`` (music21 10.5), in linear
    time: that method copies the stream and walks its spanners once per merged note, which
    takes minutes on a long string-quartet movement. Its rules, over the notes, chords and
    rests of positive duration in order: a tie ``start`` opens a run (or extends the run its
    predecessor is in); a ``continue`` extends a run, or opens one when its predecessor does
    not match it; a run closes on a note (not a chord) whose tie is ``stop``, or on the
    element right after a run member that matches it (the same pitch for notes; as many
    pitches, each the same step and enharmonic, for chords and rests), and every member's
    duration is added to the first, in exact quarter-length arithmetic (``opFrac``).

    Args:
        flat: a flat music21 stream (``part.flatten()``).

    Returns:
        one ``(MIDI pitch, onset, duration)`` tuple per pitch of every note or chord that is
        not merged into an earlier one, in the stream's order.

    Raises:
        WbError: ``flat`` is not flat (a part with measures: flatten it first).
    """
    from music21 import chord, note
    from music21.common.numberTools import opFrac

    if not flat.isFlat:
        raise WbError("tied_notes needs a flat stream (call .flatten() first)")
    els = [e for e in flat.notesAndRests if e.quarterLength > 0]
    dur = [e.quarterLength for e in els]
    dropped = [False] * len(els)
    run: list[int] = []

    def tie_type(e) -> str | None:
        tie = getattr(e, "tie", None)
        return None if tie is None else tie.type

    def matches(i: int) -> bool:
        e = els[i]
        if not isinstance(e, chord.Chord) and tie_type(e) == "stop":
            return True
        if not run or run[-1] != i - 1:  # the predecessor is not in the run
            return False
        last = els[i - 1]
        if isinstance(last, note.Note) and isinstance(e, note.Note):
            return last.pitch == e.pitch
        if isinstance(e, note.Note) or len(last.pitches) != len(e.pitches):
            return False
        return all(a.step == b.step and a.isEnharmonic(b)
                   for a, b in zip(last.pitches, e.pitches, strict=True))  # fmt: skip

    for i, e in enumerate(els):
        kind, end = tie_type(e), None
        if kind == "start":
            if not run or run[-1] != i - 1:
                run = []
            run.append(i)
            end = False
        elif kind == "continue":
            if run and not matches(i):
                run = []
            run.append(i)
            end = False
        if end is None and matches(i):
            run.append(i)
            if len(run) >= 2:
                for j in run[1:]:
                    dur[run[0]] = opFrac(dur[run[0]] + dur[j])
                    dropped[j] = True
            run = []
    return [
        (int(p.midi), float(e.offset), float(dur[i]))
        for i, e in enumerate(els)
        if not dropped[i] and not isinstance(e, note.Rest)
        for p in e.pitches
    ]


def render_excerpt(
    parts: Sequence[Sequence[tuple[int, float, float]]],
    dest: str | os.PathLike,
    seed: int,
    sample_rate: int = 16000,
    seconds: float = 30.0,
    offset: float = 0.0,
) -> dict[str, Any]:
    """Render ``seconds`` of a work with random programs, sound font, tempo and
    transposition (a work shorter than that is repeated), as a float WAV, peak 0.9.

    Args:
        parts: per part, ``(MIDI pitch, onset, duration)`` notes in quarter lengths.
        dest: the WAV to write; seed: draws the rendition; sample_rate: Hz.
        seconds: excerpt length; offset: where the excerpt starts in the performance, in
            seconds (past the end the work starts again).

    Raises:
        WbError: no notes, or the render came out silent.
    """
    import pretty_midi
    import soundfile as sf

    from music.synth import render_midi, soundfont_path

    rng = np.random.default_rng(seed)
    bpm = float(rng.uniform(60, 140))
    spq = 60.0 / bpm
    shift = int(rng.integers(-3, 4))
    length = max(s + d for part in parts for _, s, d in part) * spq
    if length <= 0:
        raise WbError("no notes")
    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    programs = []
    for part in list(parts)[:15]:
        program = int(rng.choice(PROGRAMS))
        programs.append(program)
        inst = pretty_midi.Instrument(program=program)
        for rep in range(int(np.ceil((offset + seconds) / length))):
            for pitch, onset, dur in part:
                start = rep * length + onset * spq - offset
                if start >= seconds:
                    break
                vel = int(np.clip(80 + rng.integers(-12, 13), 1, 127))
                end = min(start + dur * spq, seconds)
                if end <= 0:
                    continue
                start = max(start, 0.0)
                key = int(np.clip(pitch + shift, 21, 108))
                inst.notes.append(pretty_midi.Note(vel, key, start, max(end - 0.01, start + 0.02)))
        pm.instruments.append(inst)
    font = str(rng.choice(SOUNDFONTS))
    with tempfile.TemporaryDirectory(prefix="wb-style-") as tmp:
        mid = Path(tmp) / "x.mid"
        pm.write(str(mid))
        x = render_midi(mid, Path(tmp) / "x.wav", sample_rate, soundfont_path(font),
                        reverb=bool(rng.random() < 0.5))  # fmt: skip
    n = int(seconds * sample_rate)
    x = np.pad(x[:n], (0, max(0, n - len(x))))
    peak = float(np.abs(x).max())
    if peak <= 0:
        raise WbError("the excerpt rendered silent")
    sf.write(dest, (x * (0.9 / peak)).astype(np.float32), sample_rate, subtype="FLOAT")
    return {"bpm": bpm, "transpose": shift, "programs": programs, "soundfont": font}


def prepare_styles(
    root: str | os.PathLike,
    per_class: int = CLASS_SIZE,
    styles: Sequence[str] | None = None,
    seconds: float = 30.0,
    seed: int = 0,
    jobs: int | None = None,
    quiet: bool | None = None,
    renditions: int = 1,
    excerpts_per_class: int | None = None,
) -> dict[str, int]:
    """Render ``renditions`` excerpts of each of ``per_class`` works per style into
    ``root/<style>/``, or, with ``excerpts_per_class``, exactly that many excerpts per style
    spread over as many works as the style has (up to ``per_class``).

    Works are drawn in a seeded order; a work that cannot be parsed or has too few parts is
    replaced by the next one. Rendition ``k`` of a work starts ``k * seconds`` into the
    performance with its own programs, sound font, tempo and transposition; rendition 0 is
    the excerpt a one-rendition set has, so raising ``renditions`` adds files and keeps the
    old ones. All renditions of a work carry its group in their names
    (``<group>__<work>[__<k>].wav``), so folds stay work-disjoint. Excerpts already rendered
    are kept (resumable).

    ``excerpts_per_class`` balances the classes by excerpts rather than by works, so that a
    style with many works in the corpus contributes many different works: with ``E`` excerpts
    and ``n = min(per_class, E, works of the style)`` works, every work gets ``E // n``
    renditions and the first ``E % n`` (in the seeded order) one more. If works fail to
    render and the style runs out of replacements, the rest are spread over the works that
    rendered, so the class still gets ``E``. Render such a set into its own ``root``: excerpts
    left there by other settings are not counted and would unbalance the classes.

    Args:
        root: output folder; ``root/<style>/<group>__<work>[__<k>].wav`` (30 s float WAV).
        per_class: works per style (with ``excerpts_per_class``: at most this many).
        styles: keys of :data:`STYLES` (default all).
        seconds: excerpt length in seconds.
        seed: seeds the work order and every rendition's draws.
        jobs: render processes (default: one per core).
        quiet: hide the progress bar.
        renditions: excerpts per work; must stay 1 with ``excerpts_per_class``.
        excerpts_per_class: excerpts per style, or None for ``per_class * renditions``.

    Returns:
        ``{style: excerpts rendered for it}``.

    Raises:
        ConfigError: an unknown style, ``renditions`` or ``excerpts_per_class`` below 1, or
            both ``renditions > 1`` and ``excerpts_per_class``.
    """
    from concurrent.futures import ProcessPoolExecutor

    from music.chorale_corpus import mp_context
    from wb.progress import progress

    if renditions < 1:
        raise ConfigError(f"renditions={renditions}: must be at least 1")
    if excerpts_per_class is not None:
        if excerpts_per_class < 1:
            raise ConfigError(f"excerpts_per_class={excerpts_per_class}: must be at least 1")
        if renditions != 1:
            raise ConfigError(
                f"renditions={renditions} with excerpts_per_class={excerpts_per_class}: "
                "choose one (excerpts_per_class sets the renditions of every work)"
            )
    root = Path(root)
    chosen = list(styles or STYLES)
    quota = excerpts_per_class or per_class * renditions
    counts = {}
    bar = progress(total=quota * len(chosen), desc="rendering styles", unit="excerpt",
                   quiet=quiet)  # fmt: skip
    with bar, ProcessPoolExecutor(max_workers=jobs or os.cpu_count() or 1,
                                  mp_context=mp_context()) as pool:  # fmt: skip
        for style in chosen:
            works = candidates(style)
            order = np.random.default_rng(zlib.crc32(f"{seed}:{style}".encode())).permutation(
                len(works)
            )
            wanted = min(per_class, quota, len(works)) if excerpts_per_class else per_class
            first = quota // max(wanted, 1)  # renditions of every work in the first pass
            rendered: list[tuple] = []  # the items of the works that rendered, in order
            cursor = 0
            while len(rendered) < wanted and cursor < len(works):
                batch = []
                for i in order[cursor : cursor + (wanted - len(rendered))]:
                    group, work, path, opus = works[int(i)]
                    batch.append((style, group, work, path, opus, str(root), seed, seconds,
                                  first))  # fmt: skip
                cursor += len(batch)
                for item, (_dest, error) in zip(batch, pool.map(_job, batch), strict=True):
                    if error is None:
                        rendered.append(item)
                        bar.update(first)
            n = len(rendered)
            if excerpts_per_class and n:
                # the remainder (and what failed works left over) on the first works in order
                share = [quota // n + (j < quota % n) for j in range(n)]
                pairs = zip(rendered, share, strict=True)
                more = [item[:-1] + (r,) for item, r in pairs if r > first]
                for item, (_dest, error) in zip(more, pool.map(_job, more), strict=True):
                    if error is not None:
                        raise WbError(f"{style}: {item[2]} rendered before, now fails: {error}")
                    bar.update(item[-1] - first)
                counts[style] = quota
            else:
                counts[style] = n * first
    return counts


def excerpt_name(group: str, work: str, rendition: int = 0) -> str:
    """File name of a work's excerpt: ``<group>__<work>.wav`` (``<work>__0.wav`` when the
    work is its own group), with ``__<k>`` before ``.wav`` for rendition ``k > 0``."""
    if group == work:
        return f"{work}__{rendition}.wav"
    return f"{group}__{work}.wav" if rendition == 0 else f"{group}__{work}__{rendition}.wav"


def _job(
    item: tuple[str, str, str, str, int | None, str, int, float, int],
) -> tuple[str, str | None]:
    """Render the missing renditions of one work (parsed once); ``(first file, error)``."""
    style, group, work, path, opus, root, seed, seconds, renditions = item
    dests = [Path(root) / style / excerpt_name(group, work, k) for k in range(renditions)]
    if all(d.is_file() for d in dests):
        return str(dests[0]), None
    try:
        parts = _parts(path, opus)
        if not parts or len(parts) < STYLES[style].get("min_parts", 1):
            return str(dests[0]), f"{len(parts)} parts"
        dests[0].parent.mkdir(parents=True, exist_ok=True)
        for k, dest in enumerate(dests):
            if dest.is_file():
                continue
            key = f"{seed}:{style}:{work}" + (f":{k}" if k else "")
            tmp = dest.with_name(f".{dest.name}.tmp.wav")
            render_excerpt(parts, tmp, zlib.crc32(key.encode()), seconds=seconds,
                           offset=k * seconds)  # fmt: skip
            os.replace(tmp, dest)
        return str(dests[0]), None
    except Exception as exc:  # noqa: BLE001 - reported per work, the set goes on
        return str(dests[0]), f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}"
