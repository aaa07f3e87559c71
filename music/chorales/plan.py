"""Random choices of one rendition (:func:`plan_rendition`): tempo, transposition, breaths,
dropped notes, programs, gains, humanisation (Gover & Depalle 2020 and more)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from music.chorale_corpus import (
    VOICES,
)
from music.chorales.config import MIN_NOTE_SECONDS, TIMBRES, ChoraleConfig, piece_seed
from music.chorales.performance import PartExpression, RoomPlan, draw_expression, draw_room, legato
from music.synth import (
    TimedNote,
)
from wb.errors import WbError


# ---------------------------------------------------------------------------- augmentation
@dataclass
class RenditionPlan:
    """Everything random about one rendition, decided before any audio is made.

    Attributes:
        work: corpus name (``bach/bwv255``).
        rendition: rendition index.
        seed: :func:`piece_seed`.
        programs: ``{voice: 0-based GM program}``.
        bpm: tempo in quarter notes per minute.
        transposition: semitones added to every pitch.
        in_range: whether every voice lies inside ``voice_ranges`` after transposing.
        gains_db: ``{voice: gain in dB}``.
        notes: ``{voice: [TimedNote]}`` in seconds, after breaths, dropping, humanising
            and ``max_seconds``.
        dropped: ``{voice: number of dropped notes}``.
        breaths: number of breath rests inserted.
        duration: seconds of audio (last note end + ``tail``).
        soundfonts: ``{voice: sound font}`` drawn from ``config.soundfonts``; ``None`` when
            there is no pool (every part uses ``config.soundfont``).
        expression: ``{voice: PartExpression}`` when ``config.expressive``, else ``None``.
        room: the :class:`RoomPlan` when ``config.room``, else ``None``.
    """

    work: str
    rendition: int
    seed: int
    programs: dict[str, int]
    bpm: int
    transposition: int
    in_range: bool
    gains_db: dict[str, float]
    notes: dict[str, list[TimedNote]]
    dropped: dict[str, int]
    breaths: int
    duration: float
    soundfonts: dict[str, str] | None = None
    expression: dict[str, PartExpression] | None = None
    room: RoomPlan | None = None


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def choose_transposition(
    parts: Mapping[str, Sequence[Sequence[float]]],
    voice_ranges: Mapping[str, Sequence[int]],
    max_shift: int,
    rng: np.random.Generator,
) -> tuple[int, bool]:
    """Pick a transposition in semitones keeping every voice inside its range if possible.

    Args:
        parts: ``{voice: [[pitch, ...], ...]}``.
        voice_ranges: ``{voice: [low, high]}`` MIDI numbers.
        max_shift: candidates are ``-max_shift..max_shift``.
        rng: source of the uniform choice among the feasible shifts.

    Returns:
        ``(shift, in_range)``: a uniformly drawn feasible shift and True; when no shift is
        feasible, the one with the fewest semitones outside the ranges (smallest ``|shift|``
        on ties) and False.
    """
    lims = {v: (min(n[0] for n in ns), max(n[0] for n in ns)) for v, ns in parts.items() if ns}

    def excess(s: int) -> int:
        total = 0
        for v, (lo, hi) in lims.items():
            low, high = voice_ranges[v]
            total += max(0, low - (lo + s)) + max(0, (hi + s) - high)
        return total

    shifts = list(range(-max_shift, max_shift + 1))
    feasible = [s for s in shifts if excess(s) == 0]
    if feasible:
        return int(feasible[int(rng.integers(len(feasible)))]), True
    return min(shifts, key=lambda s: (excess(s), abs(s), s)), False


def _rest(notes: list[list[float]], w0: float, w1: float) -> list[list[float]]:
    """Silence ``[w0, w1)`` (quarter notes): cut notes overlapping it, re-attacking after."""
    out: list[list[float]] = []
    for p, on, dur, ferm in notes:
        end = on + dur
        if end <= w0 + 1e-9 or on >= w1 - 1e-9:
            out.append([p, on, dur, ferm])
            continue
        if on < w0 - 1e-9:
            out.append([p, on, w0 - on, ferm])
        if end > w1 + 1e-9:
            out.append([p, w1, end - w1, ferm])
    return out


def breath_windows(
    soprano: Sequence[Sequence[float]], length_ql: float, breath_beats: float
) -> list[tuple[float, float]]:
    """Rest windows ``(start, end)`` in quarter notes for breaths.

    One window of ``breath_beats`` ends at each phrase end, i.e. where a soprano fermata
    note ends, except at the end of the piece. A work without fermatas breathes every 8
    beats instead, the last 2 beats excluded (Gover & Depalle's rule).
    """
    if breath_beats <= 0:
        return []
    ends = sorted({n[1] + n[2] for n in soprano if n[3]})
    ends = [t for t in ends if t < length_ql - 1e-6]
    if not any(n[3] for n in soprano):
        ends = [float(t) for t in range(8, int(length_ql) - 1, 8)]
    return [(max(0.0, t - breath_beats), t) for t in ends]


def plan_rendition(work: Mapping[str, Any], config: ChoraleConfig, rendition: int) -> RenditionPlan:
    """Decide tempo, key, programs, gains and the exact notes of one rendition.

    Order of operations: transposition (on the score), breaths, dropped notes, quarter notes
    to seconds at ``bpm``, humanisation (onset jitter, velocities), ``max_seconds`` cut.
    Each random aspect has its own generator seeded from :func:`piece_seed`, so switching
    one augmentation off leaves the others' draws unchanged.

    Args:
        work: an extracted work (:func:`music.chorale_corpus.extract_work`, status ``ok``).
        config: generator settings.
        rendition: rendition index (0-based).

    Returns:
        The :class:`RenditionPlan`.

    Raises:
        WbError: the rendition would contain no note (e.g. ``max_seconds`` too small).
    """
    name = work["name"]
    seed = piece_seed(config.seed, name, rendition)
    parts = {v: [list(n) for n in work["parts"][v]] for v in VOICES}
    choices = TIMBRES[config.timbre]
    programs = {
        v: int(choices[v][int(_rng(seed, 0, i).integers(len(choices[v])))])
        for i, v in enumerate(VOICES)
    }
    bpm = int(_rng(seed, 1).integers(config.tempo[0], config.tempo[1] + 1))
    shift, in_range = choose_transposition(
        parts, config.voice_ranges, config.transpose, _rng(seed, 2)
    )
    gains = {
        v: round(float(_rng(seed, 3, i).uniform(-config.gain_db, config.gain_db)), 3)
        for i, v in enumerate(VOICES)
    }
    n_breaths = 0
    if config.breaths:
        windows = breath_windows(parts["soprano"], float(work["length_ql"]), config.breath_beats)
        n_breaths = len(windows)
        for w0, w1 in windows:
            parts = {v: _rest(ns, w0, w1) for v, ns in parts.items()}
    dropped: dict[str, int] = {}
    for i, v in enumerate(VOICES):
        ns = parts[v]
        k = min(int(len(ns) * config.drop_fraction), max(0, len(ns) - 2))
        if k:
            gone = set(_rng(seed, 4, i).choice(len(ns) - 2, size=k, replace=False).tolist())
            parts[v] = [n for j, n in enumerate(ns) if j not in gone]
        dropped[v] = k
    sec = 60.0 / bpm
    notes: dict[str, list[TimedNote]] = {}
    for i, v in enumerate(VOICES):
        rng = _rng(seed, 5, i)
        timed: list[list[float]] = []
        for p, on, dur, _ in parts[v]:
            start, end = on * sec, (on + dur) * sec
            vel = config.velocity
            if config.humanize:
                if config.onset_jitter > 0:
                    lim = 2.5 * config.onset_jitter
                    d = float(np.clip(rng.normal(0.0, config.onset_jitter), -lim, lim))
                    start, end = max(0.0, start + d), max(0.0, end + d)
                if config.velocity_jitter:
                    j = config.velocity_jitter
                    vel += int(rng.integers(-j, j + 1))
            timed.append([int(p) + shift, start, end, int(np.clip(vel, 1, 127))])
        timed.sort(key=lambda n: n[1])
        if config.expressive:  # its own stream: the other draws are as without expression
            legato(timed, float(config.legato), _rng(seed, 7, i))
        else:
            for a, b in zip(timed, timed[1:], strict=False):
                a[2] = min(a[2], b[1])  # monophonic: a note ends before the next begins
        if config.max_seconds is not None:
            timed = [n for n in timed if n[1] < config.max_seconds]
            for n in timed:
                n[2] = min(n[2], float(config.max_seconds))
        notes[v] = [
            TimedNote(int(p), round(s, 6), round(e, 6), int(vel))
            for p, s, e, vel in timed
            if e - s >= MIN_NOTE_SECONDS
        ]
    soundfonts = None
    if config.soundfonts:  # its own streams: the other draws are as without a pool
        pool = list(config.soundfonts)
        soundfonts = {
            v: pool[int(_rng(seed, 6, i).integers(len(pool)))] for i, v in enumerate(VOICES)
        }
    expression = None
    if config.expressive:
        expression = {
            v: draw_expression(_rng(seed, 8, i), config.vibrato_cents, config.detune_cents)
            for i, v in enumerate(VOICES)
        }
    room = None
    if config.room:
        room = draw_room(
            _rng(seed, 9), VOICES, config.rt60, config.wet_db, config.eq_db, config.noise_db,
            config.sample_rate,
        )  # fmt: skip
    last = max((n.end for ns in notes.values() for n in ns), default=0.0)
    if last <= 0:
        raise WbError(f"{name}: rendition {rendition} has no notes to render")
    return RenditionPlan(
        work=name,
        rendition=rendition,
        seed=seed,
        programs=programs,
        bpm=bpm,
        transposition=shift,
        in_range=in_range,
        gains_db=gains,
        notes=notes,
        dropped=dropped,
        breaths=n_breaths,
        duration=last + float(config.tail) + (0.5 * room.rt60 if room else 0.0),
        soundfonts=soundfonts,
        expression=expression,
        room=room,
    )
