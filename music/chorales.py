"""Offline four-part (SATB) chorale data set rendered from the music21 Bach corpus.

Every four-voice work of ``music21.corpus.getComposer('bach')`` (see
:mod:`music.chorale_corpus` for which works qualify and how voices are assigned) is rendered
part by part with FluidSynth (:mod:`music.synth`) into a MUSDB-like tree::

    <root>/<split>/<piece>__r<k>/{mixture,soprano,alto,tenor,bass}.wav   mono, sample_rate Hz
                                 {soprano,alto,tenor,bass}.mid             notes as rendered
                                 meta.json                                 settings + checksums
    <root>/manifest.json                                                   pieces, splits, skips

The mixture is the exact sample-wise sum of the four stems as written (PCM_16 stems are
quantised first and the mixture is the integer sum; FLOAT stems are summed in float32), all
five scaled by one factor so the largest of them peaks at ``peak`` (no clipping).

Augmentation follows Gover & Depalle, "Score-informed source separation of choral music"
(ISMIR 2020; github.com/matangover/synthesize-chorales): a random tempo, breaths (short rests
at phrase ends, i.e. before every fermata but the last; every 8 beats when a work has no
fermata, as in their code) and dropped notes (a fraction of each part's notes turned into
rests, never the last two). On top of that: a random General MIDI program per part from a
timbre set, a transposition of up to +-``transpose`` semitones chosen among those that keep
every voice inside its range, a per-part gain of up to +-``gain_db`` dB, humanised onsets and
velocities, and FluidSynth reverb on or off. Every random choice of rendition ``k`` of a work
comes from :func:`piece_seed` (global seed, work name, ``k``), so results do not depend on
which process renders what or in which order.

Splits (:func:`music.chorale_corpus.assign_splits`): test is the held-out list
(``heldout``, default ``../shared/heldout_chorales.txt``) plus every work with the same
soprano tune; valid is a fixed ~5 % of the rest chosen by a hash of the work name; train is
everything else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from music.chorale_corpus import (
    VOICES,
    assign_splits,
    corpus_works,
    interval_sequence,
    load_works,
    mp_context,
    normalize_name,
    read_heldout,
    same_tune,
    tune_similarity,
)
from music.synth import (
    DEFAULT_SOUNDFONT,
    GM_NAMES,
    TimedNote,
    check_soundfont,
    find_fluidsynth,
    render_midi,
    write_midi,
)
from wb.errors import ConfigError, WbError
from wb.runs import file_digest

__all__ = [
    "ChoraleConfig",
    "PrepareSummary",
    "RenditionPlan",
    "SPLITS",
    "STEMS",
    "TIMBRES",
    "VOICES",
    "assign_splits",
    "check_prepare_kwargs",
    "default_kwargs",
    "interval_sequence",
    "piece_seed",
    "plan_rendition",
    "prepare_chorales",
    "read_heldout",
    "render_rendition",
    "same_tune",
    "tune_similarity",
    "verify_piece",
]

SPLITS = ("train", "valid", "test")
STEMS = ("mixture", *VOICES)
GENERATOR_VERSION = 1
SAMPLE_RATE_RANGE = (8000, 48000)
SUBTYPES = ("PCM_16", "FLOAT")
MIN_NOTE_SECONDS = 0.03

# 0-based General MIDI programs per voice. choir: Choir Aahs, Voice Oohs, Synth Voice.
# ensemble: strings (violin, viola, cello, contrabass, string ensemble), woodwinds (oboe,
# English horn, clarinet, flute, bassoon) and brass (trumpet, horn, trombone, tuba), each
# voice drawing from the instruments that play in its register.
_CHOIR = (52, 53, 54)
TIMBRES: dict[str, dict[str, tuple[int, ...]]] = {
    "choir": {v: _CHOIR for v in VOICES},
    "ensemble": {
        "soprano": (40, 48, 56, 68, 71, 73),
        "alto": (40, 41, 48, 60, 69, 71),
        "tenor": (41, 42, 48, 57, 60, 70),
        "bass": (42, 43, 48, 57, 58, 70),
    },
}
TIMBRES["mixed"] = {v: _CHOIR + TIMBRES["ensemble"][v] for v in VOICES}

# Comfortable SATB ranges as MIDI numbers (C4-A5, F3-D5, C3-A4, D2-E4).
DEFAULT_VOICE_RANGES = {"soprano": [60, 81], "alto": [53, 74], "tenor": [48, 69], "bass": [38, 64]}

Log = Callable[[str], None]


# ----------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class ChoraleConfig:
    """Settings of the chorale generator (the ``data:`` group of the SATB recipe, minus
    ``root`` and the subset options of :func:`prepare_chorales`).

    Attributes:
        sample_rate: output rate in Hz, 8000..48000.
        renditions: renditions per work (``<piece>__r0`` .. ``r<N-1>``).
        timbre: ``"choir"``, ``"ensemble"`` or ``"mixed"`` (see :data:`TIMBRES`).
        seed: global seed; rendition seeds derive from it (:func:`piece_seed`).
        tempo: ``[min, max]`` quarter notes per minute; each rendition draws an integer.
        transpose: largest transposition in semitones (a shift in ``-transpose..transpose``
            keeping every voice in ``voice_ranges`` is drawn; if none exists, the shift with
            the fewest semitones outside the ranges).
        voice_ranges: ``{voice: [lowest, highest]}`` MIDI numbers.
        gain_db: per-part gain drawn uniformly in ``[-gain_db, gain_db]`` dB.
        humanize: jitter onsets and velocities.
        onset_jitter: onset jitter standard deviation in seconds (clipped to 2.5 sigma).
        velocity: MIDI velocity (1..127) of every note before jitter.
        velocity_jitter: velocities vary uniformly by up to this many steps.
        breaths: insert breaths (rests of ``breath_beats`` quarter notes) at phrase ends.
        breath_beats: breath length in quarter notes.
        drop_fraction: share of each part's notes turned into rests (0..0.5).
        reverb: FluidSynth reverb on or off.
        max_seconds: cut every rendition to this many seconds (``None``: whole work).
        tail: seconds kept after the last note ends (release and reverb).
        peak: peak level in (0, 0.99] of the loudest of mixture and stems.
        subtype: ``"PCM_16"`` or ``"FLOAT"`` WAV samples.
        synth_gain: FluidSynth master gain (``-g``).
        soundfont: General MIDI ``.sf2`` file.
        fluidsynth: FluidSynth executable name or path.
        heldout: held-out list file; a relative path is tried from the working directory,
            then from the project root.
        valid_fraction: share of non-test works in valid.
        cache_dir: parse-cache root (``None``: ``$WB_CACHE_DIR`` or ``~/.cache/wb``).
    """

    sample_rate: int = 16000
    renditions: int = 1
    timbre: str = "choir"
    seed: int = 0
    tempo: tuple[int, int] = (60, 100)
    transpose: int = 3
    voice_ranges: Mapping[str, Sequence[int]] = field(
        default_factory=lambda: dict(DEFAULT_VOICE_RANGES)
    )
    gain_db: float = 6.0
    humanize: bool = True
    onset_jitter: float = 0.01
    velocity: int = 80
    velocity_jitter: int = 10
    breaths: bool = True
    breath_beats: float = 0.5
    drop_fraction: float = 0.1
    reverb: bool = True
    max_seconds: float | None = None
    tail: float = 1.0
    peak: float = 0.9
    subtype: str = "PCM_16"
    synth_gain: float = 0.5
    soundfont: str = DEFAULT_SOUNDFONT
    fluidsynth: str = "fluidsynth"
    heldout: str = "../shared/heldout_chorales.txt"
    valid_fraction: float = 0.05
    cache_dir: str | None = None

    # Keys that do not change a rendition's audio (not compared when resuming).
    _NOT_RENDERING = ("renditions", "fluidsynth", "heldout", "valid_fraction", "cache_dir")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> ChoraleConfig:
        """Build and validate a config from keyword arguments (YAML-typed values welcome).

        Raises:
            ConfigError: an unknown key or an invalid value, named in the message.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise ConfigError(
                f"unknown chorale setting(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(names))})"
            )
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Check every value.

        Raises:
            ConfigError: the first invalid setting, with what is accepted.
        """
        lo, hi = SAMPLE_RATE_RANGE
        if not _is_int(self.sample_rate) or not lo <= self.sample_rate <= hi:
            raise ConfigError(
                f"sample_rate={self.sample_rate!r} Hz is not supported: use an integer "
                f"between {lo} and {hi} Hz"
            )
        if not _is_int(self.renditions) or self.renditions < 1:
            raise ConfigError(f"renditions={self.renditions!r} must be a positive integer")
        if self.timbre not in TIMBRES:
            raise ConfigError(f"timbre={self.timbre!r} is unknown (choose {', '.join(TIMBRES)})")
        if not _is_int(self.seed):
            raise ConfigError(f"seed={self.seed!r} must be an integer")
        t = self.tempo
        if (
            not isinstance(t, Sequence)
            or len(t) != 2
            or not all(_is_int(x) for x in t)
            or not 20 <= t[0] <= t[1] <= 300
        ):
            raise ConfigError(
                f"tempo={t!r} must be [min, max] integer BPM with 20 <= min <= max <= 300"
            )
        if not _is_int(self.transpose) or not 0 <= self.transpose <= 12:
            raise ConfigError(f"transpose={self.transpose!r} must be an integer 0..12 (semitones)")
        vr = self.voice_ranges
        if not isinstance(vr, Mapping) or set(vr) != set(VOICES):
            raise ConfigError(f"voice_ranges must map each of {', '.join(VOICES)} to [low, high]")
        for v, r in vr.items():
            if (
                not isinstance(r, Sequence)
                or len(r) != 2
                or not all(_is_int(x) for x in r)
                or not 0 <= r[0] < r[1] <= 127
            ):
                raise ConfigError(f"voice_ranges.{v}={r!r} must be [low, high] MIDI numbers")
        for key, top in (("gain_db", 24.0), ("onset_jitter", 0.1), ("breath_beats", 4.0)):
            val = getattr(self, key)
            if not _is_num(val) or not 0 <= val <= top:
                raise ConfigError(f"{key}={val!r} must be a number between 0 and {top}")
        if not _is_num(self.drop_fraction) or not 0 <= self.drop_fraction <= 0.5:
            raise ConfigError(f"drop_fraction={self.drop_fraction!r} must be between 0 and 0.5")
        if not _is_int(self.velocity) or not 1 <= self.velocity <= 127:
            raise ConfigError(f"velocity={self.velocity!r} must be an integer 1..127")
        if not _is_int(self.velocity_jitter) or not 0 <= self.velocity_jitter <= 64:
            raise ConfigError(f"velocity_jitter={self.velocity_jitter!r} must be an integer 0..64")
        for key in ("humanize", "breaths", "reverb"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key}={getattr(self, key)!r} must be true or false")
        ms = self.max_seconds
        if ms is not None and (not _is_num(ms) or ms <= 0):
            raise ConfigError(f"max_seconds={self.max_seconds!r} must be a positive number or null")
        if not _is_num(self.tail) or not 0 <= self.tail <= 10:
            raise ConfigError(f"tail={self.tail!r} must be between 0 and 10 seconds")
        if not _is_num(self.peak) or not 0 < self.peak <= 0.99:
            raise ConfigError(f"peak={self.peak!r} must be in (0, 0.99]")
        if self.subtype not in SUBTYPES:
            raise ConfigError(f"subtype={self.subtype!r} must be one of {', '.join(SUBTYPES)}")
        if not _is_num(self.synth_gain) or not 0 < self.synth_gain < 10:
            raise ConfigError(f"synth_gain={self.synth_gain!r} must be in (0, 10)")
        if not _is_num(self.valid_fraction) or not 0 <= self.valid_fraction < 1:
            raise ConfigError(f"valid_fraction={self.valid_fraction!r} must be in [0, 1)")
        for key in ("soundfont", "fluidsynth", "heldout"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise ConfigError(f"{key} must be a non-empty path string")

    def render_dict(self) -> dict[str, Any]:
        """The settings that shape a rendition's audio, JSON-normalised (stored in meta.json
        and compared when deciding whether a rendered piece is still valid)."""
        d = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in self._NOT_RENDERING
        }
        d["voice_ranges"] = {v: list(self.voice_ranges[v]) for v in VOICES}
        d["soundfont"] = str(Path(self.soundfont).expanduser().resolve())
        return json.loads(json.dumps(d))

    def to_dict(self) -> dict[str, Any]:
        """All settings, JSON-normalised."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["voice_ranges"] = {v: list(self.voice_ranges[v]) for v in VOICES}
        return json.loads(json.dumps(d))


def _is_int(x: Any) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)


def piece_seed(seed: int, work: str, rendition: int) -> int:
    """Seed of rendition ``rendition`` of ``work``: 63 bits of sha256("seed|work|rendition")."""
    digest = hashlib.sha256(f"{int(seed)}|{work}|{int(rendition)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def piece_id(work: str, rendition: int) -> str:
    """Folder name of a rendition: ``bach/bwv255``, 0 -> ``bwv255__r0``."""
    return f"{work.split('/')[-1]}__r{int(rendition)}"


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
        duration=last + float(config.tail),
    )


# -------------------------------------------------------------------------------- rendering
def _combined_checksum(files: Mapping[str, str]) -> str:
    text = "".join(f"{name}:{files[name]}\n" for name in sorted(files))
    return hashlib.sha256(text.encode()).hexdigest()


def expected_files() -> list[str]:
    """Files of a finished piece folder besides ``meta.json``."""
    return [f"{s}.wav" for s in STEMS] + [f"{v}.mid" for v in VOICES]


def render_rendition(
    work: Mapping[str, Any],
    config: ChoraleConfig,
    rendition: int,
    split: str,
    out_dir: str | os.PathLike,
) -> dict[str, Any]:
    """Render one rendition into ``out_dir`` (an empty folder) and write its meta.json last.

    Steps: :func:`plan_rendition`; per voice, the MIDI file (``<voice>.mid``) and a
    FluidSynth render at ``sample_rate`` (mono, trimmed/padded to ``duration``); per-part
    gains; one scale factor so the loudest of mixture and stems peaks at ``peak``; stems
    written, the mixture written as their exact sum.

    Args:
        work: extracted work (status ``ok``).
        config: settings.
        rendition: rendition index.
        split: ``"train"``, ``"valid"`` or ``"test"`` (recorded in meta.json).
        out_dir: destination folder (created).

    Returns:
        The meta.json content.

    Raises:
        DependencyError: FluidSynth or the sound font missing.
        WbError: FluidSynth failure or silent output.
    """
    import soundfile as sf

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = plan_rendition(work, config, rendition)
    sr = int(config.sample_rate)
    n = int(math.ceil(plan.duration * sr))
    stems = np.zeros((len(VOICES), n), dtype=np.float64)
    for i, v in enumerate(VOICES):
        midi = write_midi(plan.notes[v], out / f"{v}.mid", plan.programs[v], plan.bpm, name=v)
        if not plan.notes[v]:
            continue
        tmp_wav = out / f".{v}.render.wav"
        try:
            audio = render_midi(
                midi, tmp_wav, sr, config.soundfont, config.synth_gain, config.reverb,
                config.fluidsynth,
            )  # fmt: skip
        finally:
            tmp_wav.unlink(missing_ok=True)
        m = min(n, audio.shape[0])
        stems[i, :m] = audio[:m] * 10.0 ** (plan.gains_db[v] / 20.0)
    peak = max(float(np.abs(stems).max()), float(np.abs(stems.sum(axis=0)).max()))
    if peak <= 0:
        raise WbError(f"{plan.work}: FluidSynth rendered silence for rendition {rendition}")
    scale = config.peak / peak
    scaled = stems * scale
    if config.subtype == "PCM_16":
        q = np.clip(np.round(scaled * 32768.0), -32768, 32767).astype(np.int32)
        mix = q.sum(axis=0)
        if np.abs(mix).max() > 32767:  # impossible for peak <= 0.99; guard anyway
            raise WbError(f"{plan.work}: quantised mixture would clip")
        arrays = {"mixture": mix.astype(np.int16)}
        arrays.update({v: q[i].astype(np.int16) for i, v in enumerate(VOICES)})
    else:
        f32 = scaled.astype(np.float32)
        mix32 = f32[0].copy()
        for i in range(1, len(VOICES)):
            mix32 = mix32 + f32[i]
        arrays = {"mixture": mix32}
        arrays.update({v: f32[i] for i, v in enumerate(VOICES)})
    for stem, arr in arrays.items():
        sf.write(str(out / f"{stem}.wav"), arr, sr, subtype=config.subtype)
    files = {name: file_digest(out / name) for name in expected_files()}
    source = work.get("source", "")
    meta = {
        "piece": piece_id(plan.work, rendition),
        "work": plan.work,
        "rendition": int(rendition),
        "split": split,
        "source": source,
        "source_corpus": "music21.corpus.getComposer('bach')",
        "part_names": dict(work.get("part_names", {})),
        "seed": plan.seed,
        "global_seed": int(config.seed),
        "sample_rate": sr,
        "frames": n,
        "duration": n / sr,
        "bpm": plan.bpm,
        "transposition": plan.transposition,
        "transposition_in_range": plan.in_range,
        "programs": plan.programs,
        "program_names": {v: GM_NAMES.get(p, f"program {p}") for v, p in plan.programs.items()},
        "gains_db": plan.gains_db,
        "scale": scale,
        "notes": {v: len(plan.notes[v]) for v in VOICES},
        "augmentation": {
            "timbre": config.timbre,
            "tempo_range": list(config.tempo),
            "humanize": config.humanize,
            "onset_jitter": config.onset_jitter if config.humanize else 0.0,
            "velocity": config.velocity,
            "velocity_jitter": config.velocity_jitter if config.humanize else 0,
            "breaths": config.breaths,
            "breath_beats": config.breath_beats,
            "breath_count": plan.breaths,
            "drop_fraction": config.drop_fraction,
            "dropped_notes": plan.dropped,
            "reverb": config.reverb,
            "max_seconds": config.max_seconds,
        },
        "config": config.render_dict(),
        "generator_version": GENERATOR_VERSION,
        "files": files,
        "checksum": _combined_checksum(files),
    }
    from wb.runs import write_json

    write_json(out / "meta.json", meta)
    return meta


def verify_piece(
    piece_dir: str | os.PathLike,
    config: ChoraleConfig,
    work: str,
    rendition: int,
    split: str,
) -> str | None:
    """Check a rendered piece folder against the current settings.

    Returns:
        ``None`` when complete and valid, else why not: missing folder or file, unreadable
        meta.json or WAV, settings or generator version differing from ``config``, wrong
        sample rate / channels / length, or a file whose sha256 differs from meta.json.
    """
    import soundfile as sf

    d = Path(piece_dir)
    if not d.is_dir():
        return "missing"
    try:
        meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "meta.json missing or unreadable"
    if not isinstance(meta, dict):
        return "meta.json unreadable"
    if meta.get("generator_version") != GENERATOR_VERSION:
        return "made by another generator version"
    if meta.get("config") != config.render_dict():
        return "settings changed"
    if (meta.get("work"), meta.get("rendition"), meta.get("split")) != (work, rendition, split):
        return "meta.json names another piece"
    files = meta.get("files") or {}
    for name in expected_files():
        p = d / name
        if not p.is_file():
            return f"{name} missing"
        if name.endswith(".wav"):
            try:
                info = sf.info(str(p))
            except (sf.LibsndfileError, RuntimeError):
                return f"{name} unreadable"
            if (info.samplerate, info.channels, info.frames) != (
                config.sample_rate,
                1,
                meta.get("frames"),
            ):
                return f"{name} has the wrong format or length"
        if file_digest(p) != files.get(name):
            return f"{name} checksum mismatch"
    return None


# ----------------------------------------------------------------------------- orchestration
@dataclass
class PrepareSummary:
    """What :func:`prepare_chorales` did.

    Attributes:
        root: output root.
        rendered: piece ids rendered by this run.
        already: pieces found complete and kept.
        rerendered: ``{piece id: reason}`` for pieces replaced because they were broken or
            stale (a subset of ``rendered``).
        failed: ``{piece id: error}``.
        skipped: ``{work: reason}`` for works among those considered that are not usable.
        pulled: ``{work: held-out work}`` pulled into test by the same-tune rule.
        counts: pieces per split in the manifest.
        seconds: wall time in seconds.
        audio_seconds: seconds of audio rendered by this run.
    """

    root: Path
    rendered: list[str] = field(default_factory=list)
    already: int = 0
    rerendered: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    pulled: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    audio_seconds: float = 0.0

    @property
    def pieces_per_second(self) -> float:
        """Rendered pieces per wall-clock second of this run."""
        return len(self.rendered) / self.seconds if self.seconds > 0 else 0.0


_SELECTION_KEYS = ("root", "limit", "pieces", "splits", "jobs", "quiet")


def _as_list(value: Any, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        items = [x.strip() for x in value.split(",")]
    elif isinstance(value, Iterable):
        items = [str(x).strip() for x in value]
    else:
        raise ConfigError(f"{what}={value!r} must be a comma-separated string or a list")
    items = [x for x in items if x]
    if not items:
        raise ConfigError(f"{what} is empty")
    return items


def check_prepare_kwargs(kwargs: Mapping[str, Any]) -> tuple[ChoraleConfig, dict[str, Any]]:
    """Validate :func:`prepare_chorales` keyword arguments without doing any work.

    Args:
        kwargs: ``root``, ``limit``, ``pieces``, ``splits``, ``jobs``, ``quiet`` and
            :class:`ChoraleConfig` fields (the recipe's ``data:`` group).

    Returns:
        ``(config, selection)`` with selection keys normalised.

    Raises:
        ConfigError: missing ``root``, unknown key or invalid value.
    """
    sel = {k: kwargs.get(k) for k in _SELECTION_KEYS}
    config = ChoraleConfig.from_kwargs(**{k: v for k, v in kwargs.items() if k not in sel})
    if not sel["root"] or not isinstance(sel["root"], str | os.PathLike):
        raise ConfigError("root (the output folder) must be given")
    if sel["limit"] is not None and (not _is_int(sel["limit"]) or sel["limit"] < 1):
        raise ConfigError(f"limit={sel['limit']!r} must be a positive integer")
    if sel["jobs"] is not None and (not _is_int(sel["jobs"]) or sel["jobs"] < 1):
        raise ConfigError(f"jobs={sel['jobs']!r} must be a positive integer")
    pieces = _as_list(sel["pieces"], "pieces")
    sel["pieces"] = [normalize_name(p) for p in pieces] if pieces else None
    splits = _as_list(sel["splits"], "splits")
    if splits:
        bad = [s for s in splits if s not in SPLITS]
        if bad:
            raise ConfigError(
                f"splits: unknown split(s) {', '.join(bad)} (use {', '.join(SPLITS)})"
            )
    sel["splits"] = tuple(s for s in SPLITS if not splits or s in splits)
    sel["jobs"] = int(sel["jobs"] or os.cpu_count() or 1)
    return config, sel


def default_kwargs() -> dict[str, Any]:
    """:func:`prepare_chorales` keyword arguments with their defaults (``root`` is ``None``):
    the :class:`ChoraleConfig` defaults plus ``limit``, ``pieces``, ``splits``, ``jobs``."""
    return {
        "root": None,
        **ChoraleConfig().to_dict(),
        "limit": None,
        "pieces": None,
        "splits": None,
        "jobs": None,
    }


def resolve_heldout(path: str | os.PathLike) -> Path:
    """A held-out list path: as given (``~`` expanded, relative to the working directory),
    else relative to the project root (the folder holding ``music/``)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    alt = Path(__file__).resolve().parents[1] / p
    return alt if alt.exists() else p


def _scan_pieces(root: Path) -> list[tuple[str, Path]]:
    out = []
    for split in SPLITS:
        d = root / split
        if d.is_dir():
            out.extend((split, p) for p in sorted(d.iterdir()) if p.is_dir() and "__r" in p.name)
    return out


def _work_of(piece_dir: Path) -> str:
    try:
        meta = json.loads((piece_dir / "meta.json").read_text(encoding="utf-8"))
        if isinstance(meta, dict) and isinstance(meta.get("work"), str):
            return meta["work"]
    except (OSError, ValueError):
        pass
    return "bach/" + piece_dir.name.rsplit("__r", 1)[0]


def _clean_tmp(tmp_root: Path) -> None:
    if not tmp_root.is_dir():
        return
    for p in tmp_root.iterdir():
        try:
            pid = int(p.name.split(".")[-2])
            os.kill(pid, 0)
            continue  # its process is alive
        except (ValueError, IndexError, ProcessLookupError):
            pass
        except PermissionError:
            continue
        shutil.rmtree(p, ignore_errors=True)


def _render_job(job: tuple[dict[str, Any], ChoraleConfig, int, str, str]) -> tuple[str, Any]:
    """Worker: render into a private temporary folder, then move it into place."""
    work, config, rendition, split, root = job
    pid = piece_id(work["name"], rendition)
    tmp_root = Path(root) / ".tmp"
    tmp = tmp_root / f"{pid}.{uuid.uuid4().hex[:8]}.{os.getpid()}.d"
    final = Path(root) / split / pid
    try:
        tmp.mkdir(parents=True)
        meta = render_rendition(work, config, rendition, split, tmp)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            old = tmp_root / f"{pid}.old{uuid.uuid4().hex[:8]}.{os.getpid()}.d"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        return pid, {"duration": meta["duration"]}
    except Exception as exc:  # noqa: BLE001 - reported per piece, the run goes on
        shutil.rmtree(tmp, ignore_errors=True)
        msg = " ".join(str(exc).split())[:300]
        return pid, f"{type(exc).__name__}: {msg}" if not isinstance(exc, WbError) else msg


def _default_log(msg: str) -> None:
    print(msg, flush=True)


def prepare_chorales(
    root: str | os.PathLike,
    *,
    limit: int | None = None,
    pieces: str | Sequence[str] | None = None,
    splits: str | Sequence[str] | None = None,
    jobs: int | None = None,
    quiet: bool | None = None,
    log: Log | None = None,
    **config: Any,
) -> PrepareSummary:
    """Render the chorale data set into ``root`` (resumable, parallel, atomic per piece).

    Works considered: ``pieces`` if given, else the first ``limit`` corpus names in sorted
    order, else all. Unusable works are skipped and counted; works are split
    (:func:`music.chorale_corpus.assign_splits`) and only those in ``splits`` rendered.
    A piece that is already complete and valid (:func:`verify_piece`) is kept; a missing,
    half-written, corrupt or stale one is rendered again in a temporary folder under
    ``root/.tmp`` and renamed into place. Folders of works whose split changed are removed,
    so a held-out work can never linger in train or valid. ``root/manifest.json`` is
    rewritten at the end.

    Args:
        root: output folder.
        limit: only the first ``limit`` works (sorted corpus names).
        pieces: explicit corpus names (``bach/bwv255``, ``bwv255``), list or comma string.
        splits: render only these splits (list or comma string of train, valid, test).
        jobs: worker processes (default: CPU count); 1 renders in this process.
        quiet: no progress bars when True (default: ``WB_QUIET``).
        log: receives one-line progress messages (default: print to stdout).
        **config: :class:`ChoraleConfig` fields.

    Returns:
        A :class:`PrepareSummary`.

    Raises:
        ConfigError: invalid settings, unknown piece names, missing held-out list.
        DependencyError: FluidSynth or the sound font missing (names the Debian package).
        WbError: some pieces failed to render (the others are kept; the message says which).
    """
    t0 = time.perf_counter()
    say = log or _default_log
    cfg, sel = check_prepare_kwargs(
        {**config, "root": root, "limit": limit, "pieces": pieces, "splits": splits,
         "jobs": jobs, "quiet": quiet}
    )  # fmt: skip
    find_fluidsynth(cfg.fluidsynth)
    check_soundfont(cfg.soundfont)
    out = Path(root)
    paths = corpus_works()
    heldout_path = resolve_heldout(cfg.heldout).resolve()
    heldout = read_heldout(heldout_path)
    missing = [h for h in heldout if h not in paths]
    if missing:
        raise ConfigError(f"{heldout_path}: not in the music21 Bach corpus: {', '.join(missing)}")
    if sel["pieces"]:
        unknown = [p for p in sel["pieces"] if p not in paths]
        if unknown:
            raise ConfigError(f"pieces: not in the music21 Bach corpus: {', '.join(unknown)}")
        candidates = list(dict.fromkeys(sel["pieces"]))
    else:
        candidates = list(paths)[: sel["limit"]] if sel["limit"] else list(paths)
    out.mkdir(parents=True, exist_ok=True)
    existing = _scan_pieces(out)
    existing_works = {_work_of(p) for _, p in existing}
    to_load = [*candidates, *heldout, *(w for w in existing_works if w in paths)]
    works = load_works(to_load, paths, cfg.cache_dir, jobs=sel["jobs"], quiet=sel["quiet"])
    split_of, pulled_all = assign_splits(works, heldout, cfg.valid_fraction)
    summary = PrepareSummary(root=out)
    summary.skipped = {w: works[w]["reason"] for w in candidates if works[w]["status"] != "ok"}
    considered = set(candidates)
    considered_pulled = {w: h for w, h in pulled_all.items() if w in considered}
    summary.pulled = considered_pulled
    usable = [w for w in candidates if works[w]["status"] == "ok"]
    reasons = Counter(summary.skipped.values())
    say(
        f"corpus: {len(candidates)} works considered, {len(usable)} usable, "
        f"{len(summary.skipped)} skipped"
        + (" (" + "; ".join(f"{n}x {r}" for r, n in reasons.most_common()) + ")" if reasons else "")
    )
    say(
        f"held-out: {len(heldout)} works listed in {heldout_path}; the same-tune rule pulled "
        f"{len(considered_pulled)} more of the considered works into test"
    )
    removed = 0
    for split, p in existing:
        w = _work_of(p)
        if w in split_of and split_of[w] != split:
            shutil.rmtree(p, ignore_errors=True)
            removed += 1
    if removed:
        say(f"removed {removed} piece folders whose split changed")
    selected = [w for w in usable if split_of[w] in sel["splits"]]
    if len(selected) < len(usable):
        other = Counter(split_of[w] for w in usable if split_of[w] not in sel["splits"])
        say(
            f"not rendering {len(usable) - len(selected)} works of other splits ("
            + ", ".join(f"{n} {s}" for s, n in sorted(other.items()))
            + f"); rendering splits: {', '.join(sel['splits'])}"
        )
    todo: list[tuple[str, int]] = []
    for w in selected:
        for k in range(cfg.renditions):
            target = out / split_of[w] / piece_id(w, k)
            reason = verify_piece(target, cfg, w, k, split_of[w])
            if reason is None:
                summary.already += 1
            else:
                todo.append((w, k))
                if reason != "missing":
                    summary.rerendered[piece_id(w, k)] = reason
    if not todo:
        say(f"nothing to do: {summary.already} pieces already rendered in {out}")
    else:
        extra = f", {summary.already} already rendered" if summary.already else ""
        if summary.rerendered:
            extra += f", {len(summary.rerendered)} to redo: " + "; ".join(
                f"{p} ({r})" for p, r in list(summary.rerendered.items())[:5]
            )
            extra += " ..." if len(summary.rerendered) > 5 else ""
        workers = 1 if len(todo) == 1 else min(sel["jobs"], len(todo))
        say(f"rendering {len(todo)} pieces with {workers} process(es){extra}")
        _clean_tmp(out / ".tmp")
        _run_jobs(todo, works, split_of, cfg, out, sel["jobs"], sel["quiet"], summary)
        if _empty(out / ".tmp"):
            shutil.rmtree(out / ".tmp", ignore_errors=True)
    manifest = write_manifest(out, cfg, heldout_path, works, pulled_all, summary.skipped)
    summary.counts = manifest["counts"]
    summary.seconds = time.perf_counter() - t0
    if summary.rendered:
        say(
            f"rendered {len(summary.rendered)} pieces ({summary.audio_seconds / 60:.1f} min of "
            f"audio) in {summary.seconds:.1f} s: {summary.pieces_per_second:.2f} pieces/s"
        )
    if summary.failed:
        first = next(iter(summary.failed.items()))
        raise WbError(
            f"{len(summary.failed)} of {len(todo)} pieces failed to render "
            f"(first: {first[0]}: {first[1]}); rerun to retry them"
        )
    return summary


def _empty(d: Path) -> bool:
    return d.is_dir() and not any(d.iterdir())


def _run_jobs(
    todo: Sequence[tuple[str, int]],
    works: Mapping[str, Mapping[str, Any]],
    split_of: Mapping[str, str],
    cfg: ChoraleConfig,
    out: Path,
    jobs: int,
    quiet: bool | None,
    summary: PrepareSummary,
) -> None:
    from wb.progress import progress

    args = [(dict(works[w]), cfg, k, split_of[w], str(out)) for w, k in todo]
    bar = progress(total=len(args), desc="rendering chorales", unit="piece", quiet=quiet)

    def record(result: tuple[str, Any]) -> None:
        pid, res = result
        if isinstance(res, dict):
            summary.rendered.append(pid)
            summary.audio_seconds += float(res["duration"])
        else:
            summary.failed[pid] = res
        bar.update(1)

    try:
        if jobs <= 1 or len(args) == 1:
            for a in args:
                record(_render_job(a))
        else:
            from concurrent.futures import ProcessPoolExecutor, as_completed

            workers = min(jobs, len(args))
            with ProcessPoolExecutor(max_workers=workers, mp_context=mp_context()) as pool:
                futures = [pool.submit(_render_job, a) for a in args]
                for fut in as_completed(futures):
                    record(fut.result())
    finally:
        bar.close()


def write_manifest(
    root: Path,
    cfg: ChoraleConfig,
    heldout_path: Path,
    works: Mapping[str, Mapping[str, Any]],
    pulled: Mapping[str, str],
    skipped: Mapping[str, str],
) -> dict[str, Any]:
    """Write ``root/manifest.json`` listing every valid piece folder under ``root``.

    A piece is listed when its meta.json matches the current settings (its checksum, the
    sha256 over its stem WAVs, MIDI files and their names, is taken from meta.json). Skip
    reasons and same-tune pulls from earlier runs are kept and merged with this run's.

    Returns:
        The manifest: ``config``, ``heldout``, ``counts`` (pieces per split),
        ``skipped`` (``count``, ``by_reason``, ``works``), ``test_same_tune``
        (``{work: held-out work}``) and ``pieces`` (``id``, ``work``, ``rendition``,
        ``split``, ``path``, ``duration`` in seconds, ``checksum``).
    """
    from wb.runs import write_json

    mpath = root / "manifest.json"
    try:
        old = json.loads(mpath.read_text(encoding="utf-8"))
        old = old if isinstance(old, dict) else {}
    except (OSError, ValueError):
        old = {}
    old_skipped = (old.get("skipped") or {}).get("works") or {}
    all_skipped = {**old_skipped, **skipped}
    all_pulled = {**(old.get("test_same_tune") or {}), **pulled}
    render_cfg = cfg.render_dict()
    entries = []
    for split, p in _scan_pieces(root):
        try:
            meta = json.loads((p / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(meta, dict) or meta.get("config") != render_cfg:
            continue
        if meta.get("split") != split or meta.get("piece") != p.name:
            continue
        entries.append(
            {
                "id": p.name,
                "work": meta["work"],
                "rendition": meta["rendition"],
                "split": split,
                "path": f"{split}/{p.name}",
                "duration": meta["duration"],
                "checksum": meta["checksum"],
            }
        )
    counts = {s: sum(1 for e in entries if e["split"] == s) for s in SPLITS}
    manifest = {
        "generator": "music.chorales",
        "generator_version": GENERATOR_VERSION,
        "sample_rate": cfg.sample_rate,
        "config": cfg.to_dict(),
        "heldout": {"path": str(heldout_path), "works": read_heldout(heldout_path)},
        "same_tune_rule": (
            "soprano pitch sequences without repeated notes, transposition-aligned; same tune "
            "when 2*LCS/(len_a+len_b) >= 0.8, or LCS/min_len >= 0.95 with min_len >= 16 and "
            ">= 0.6*max_len (music.chorale_corpus)"
        ),
        "counts": counts,
        "skipped": {
            "count": len(all_skipped),
            "by_reason": dict(Counter(all_skipped.values()).most_common()),
            "works": dict(sorted(all_skipped.items())),
        },
        "test_same_tune": dict(sorted(all_pulled.items())),
        "pieces": entries,
    }
    write_json(mpath, manifest)
    return manifest
