"""Synthetic monophonic sung lines for pre-training the voice-to-MIDI transcriber.

Each item is one excerpt of a monophonic line from the offline music21 corpus, performed the
way an amateur sight-singer would sing it, rendered with FluidSynth and recorded through a
random room, microphone or phone and background noise. The layout is that of the real SSVD
recordings the model is fine-tuned on, so one loader (:mod:`music.transcription.data`)
reads both::

    <root>/manifest.json           counts and durations per split, the configuration
    <root>/<split>/<id>.flac       mono, 16-bit FLAC (16 kHz by default), peak at a random level
    <root>/<split>/<id>.txt        target notes, one a line: onset_s <TAB> offset_s <TAB> midi
    <root>/<split>/<id>.json       every random choice (work, sound font, program, tempo, ...)

with ``<split>`` in ``train``, ``valid``, ``test`` and ``<id>`` the item's 5-digit index.

**Sources** (:func:`voice_sources`): every part (soprano, alto, tenor, bass) of the 4-part
Bach chorales (``corpus.getComposer('bach')``, parsed by
:func:`music.chorale_corpus.load_works`, which caches), the Essen folk songs
(``essenFolksong``, 8,000 tunes; the ``test*`` files are left out) and the fiddle and fife
tunes of Ryan's Mammoth Collection, O'Neill's 1850 and Aird's Airs. Multi-tune ABC files are
split at their ``X:`` lines and each tune is parsed on its own, as ABC 2.1 (accidentals
carry to the end of the bar, as the Essen transcriptions assume), only when an item needs it.
Items draw from three groups: chorale parts (35 %), folk songs (50 %), fiddle tunes (15 %).

**Splits** are work-disjoint: a work's split follows a hash of its name (90 / 5 / 5 %), every
chorale of the held-out list (``../shared/heldout_chorales.txt``) is in test, and a train or
valid line whose melody is the same tune as a held-out chorale's soprano
(:func:`music.chorale_corpus.same_tune`; for a chorale, its soprano is compared) is never
used, so no harmonisation of a held-out melody reaches training in any key or timbre.
Works are distinct corpus entries: a folk tune printed in two collections (Ryan's and
O'Neill's share some) counts as two works, which may land in different splits.
Train and valid are rendered with the FluidR3, TimGM6mb and MuseScore sound fonts; **test
uses only the Csound GM bank**, a sample set none of those share: the test split measures
transfer to an unseen timbre as well as to unseen works.

**Performance** (what a sight-singer does; SSVD's real recordings: median note 0.39 s,
10-90 % note durations 0.21-0.85 s, MIDI 47-75, a median gap of 23 % of the inter-onset
interval; measured on ``../shared/data/ssvd/train_valid``), see :func:`plan_line` and
:class:`Performance`:

* tempo from a drawn median inter-onset interval (0.35-0.75 s), with slow rubato and
  per-note timing jitter; a breath pause after a chorale fermata; rests capped at 2 s;
* transposition so the median lands in a drawn singer's range (male MIDI 45-64 or female
  55-76, each edge jittered by up to 2 semitones);
* detached singing: notes shortened by 0-40 %, some sung legato; hesitations (pauses of
  0.15-0.7 s), more often before leaps;
* pitch: a constant offset of the singer's reference, a constant error per note
  (up to +-28 cents) and a slow drift, a delayed vibrato (4.5-6.5 Hz, 0-60 cents, absent in
  a quarter of the lines), portamento from the previous note or a scoop from below over the
  first 30-150 ms; glides need more than the General MIDI bend range of +-2 semitones, so
  every file sets a range of +-12 semitones with RPN 0 (CC101 = 0, CC100 = 0, CC6 = 12,
  CC38 = 0), which FluidSynth honours (``tests/music/test_voices.py`` measures it);
* dynamics: a CC11 phrase curve (:func:`music.chorales.performance.expression_curve`), a
  soft start and a slight taper within each note, and velocity variety;
* successive notes alternate between two MIDI channels, so each note's pitch bend never
  bends the release of the previous one;
* breath noise (band-passed noise bursts) in some gaps, and in some lines the consonant of a
  solfege syllable (movable do, tonic = the excerpt's last note) before each onset: a short
  plosive burst for d and t, a fricative for f and s (l, m, r are voiced and left silent).

**Recording** (:class:`Acoustics`): a synthetic room (RT60 0.1-0.8 s,
:func:`music.chorales.performance.impulse_response`; a quarter of the lines dry), a random
microphone equalisation (:func:`music.chorales.performance.microphone_fir`), in 30 % of the
lines a 300-3400 Hz telephone band, white, pink, brown noise or 50/60 Hz mains hum at an SNR
of 10-40 dB, and a peak level of -20 to -1 dBFS (never clipped).

**Targets**: the notes exactly as written to the MIDI file: onset = note-on time, offset =
note-off time (never past the next onset), pitch = the integer written MIDI pitch after
transposition. The per-note cents errors, drift, vibrato and glides are *not* in the target,
nor are the breath and consonant noises (a consonant ends at its note's onset).

Items are deterministic functions of ``(seed, split, index)``; every file is written
atomically and an item counts as done when its three files exist, so an interrupted
:func:`prepare_voices` resumes where it stopped.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from music.synth import TimedNote
from wb.errors import ConfigError, WbError

VERSION = 1
SPLITS = ("train", "valid", "test")
#: Share of works per split (by a hash of the work name); held-out chorales go to test.
SPLIT_FRACTIONS = {"train": 0.90, "valid": 0.05, "test": 0.05}
#: Sound fonts (:data:`music.synth.SOUNDFONTS` names) each split draws from.
SPLIT_SOUNDFONTS = {
    "train": ("fluidr3", "timgm6mb", "musescore"),
    "valid": ("fluidr3", "timgm6mb", "musescore"),
    "test": ("csound",),
}
#: Share of the items drawn from each group of sources.
GROUP_WEIGHTS = {"chorale": 0.35, "folk": 0.50, "fiddle": 0.15}
#: ``{collection: (group, file suffix, file-name stems left out)}`` of the ABC collections.
ABC_COLLECTIONS = {
    "essenFolksong": ("folk", ".abc", ("test0", "test1", "testd", "teste")),
    "ryansMammoth": ("fiddle", ".abc", ()),
    "oneills1850": ("fiddle", ".abc", ()),
    "airdsAirs": ("fiddle", ".abc", ()),
}
CHORALE_PARTS = ("soprano", "alto", "tenor", "bass")
#: ``{program: (name, weight)}``: 0-based General MIDI programs a line is played with; all
#: exist in all four sound fonts (FluidSynth 2.3.1 preset lists). Voices take 70 %.
PROGRAMS = {
    52: ("Choir Aahs", 0.22), 53: ("Voice Oohs", 0.26), 54: ("Synth Voice", 0.10),
    85: ("Lead 6 (voice)", 0.12), 73: ("Flute", 0.05), 68: ("Oboe", 0.04),
    71: ("Clarinet", 0.04), 40: ("Violin", 0.03), 42: ("Cello", 0.03), 65: ("Alto Sax", 0.03),
    79: ("Ocarina", 0.03), 74: ("Recorder", 0.03), 69: ("English Horn", 0.02),
}  # fmt: skip
#: ``{singer: (lowest, highest)}`` MIDI range the line's median is placed in.
SINGERS = {"male": (45, 64), "female": (55, 76)}
MALE_SHARE = 0.35
IOI_SECONDS = (0.35, 0.75)  # drawn median inter-onset interval (log-uniform)
BPM_LIMITS = (30.0, 200.0)  # quarter notes per minute
MAX_REST = 2.0  # seconds: longer rests are shortened to this
MIN_NOTES = 6  # an excerpt needs at least this many notes
MAX_SPAN = 26  # semitones: wider excerpts are refused (not singable)
PITCH_LIMITS = (36, 84)  # MIDI: notes outside are moved by octaves into it
BEND_RANGE = 12  # semitones of the pitch-bend range set by RPN 0
BEND_STEP = 0.005  # seconds between pitch-bend events
CC_STEP = 0.02  # seconds between CC11 events
TICKS_PER_SECOND = 1920  # the MIDI files: 960 ticks per quarter at 120 bpm
GLIDE_GAP = 0.25  # seconds: a glide from the previous note only after a shorter gap
SOLFEGE = ("do", "di", "re", "me", "mi", "fa", "fi", "sol", "le", "la", "te", "ti")
_TMP_MAX_AGE = 3600.0  # seconds: older temporary files in a split folder are removed


# ------------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class VoiceSource:
    """One candidate monophonic line of the music21 corpus.

    Attributes:
        work: the work, the unit of the split: ``"bach/bwv255"`` (a chorale, the name used by
            :mod:`music.chorale_corpus` and the held-out list),
            ``"essenFolksong/altdeu10#12"`` (the 13th tune of a multi-tune ABC file) or
            ``"ryansMammoth/7thRegimentReel"`` (a one-tune file).
        group: ``"chorale"``, ``"folk"`` or ``"fiddle"`` (see :data:`GROUP_WEIGHTS`).
        path: the corpus file.
        part: the chorale voice (``"soprano"`` ... ``"bass"``), else None.
        tune: index of the tune in its ABC file (0-based), else None.
    """

    work: str
    group: str
    path: str
    part: str | None = None
    tune: int | None = None

    @property
    def name(self) -> str:
        """The line's name: the work, with ``:<part>`` for a chorale part."""
        return f"{self.work}:{self.part}" if self.part else self.work


def _read_text(path: str) -> str:
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


@functools.lru_cache(maxsize=64)
def _abc_tunes(path: str) -> tuple[str, ...]:
    """The tunes of an ABC file: the text from each ``X:`` line to the next."""
    blocks = re.split(r"(?m)^(?=X:)", _read_text(path))
    return tuple(b for b in blocks if b.startswith("X:"))


@functools.lru_cache(maxsize=1)
def _chorale_files() -> dict[str, Path]:
    from music import chorale_corpus as cc

    return {n: p for n, p in cc.corpus_works().items() if p.suffix.lower() in (".mxl", ".xml")}


@functools.lru_cache(maxsize=1)
def _all_sources() -> tuple[VoiceSource, ...]:
    from music21 import corpus

    out = [
        VoiceSource(name, "chorale", str(path), part=part)
        for name, path in _chorale_files().items()
        for part in CHORALE_PARTS
    ]
    for collection, (group, suffix, skip) in ABC_COLLECTIONS.items():
        paths = sorted(str(p) for p in corpus.getComposer(collection))
        for path in paths:
            stem = Path(path).stem
            if not path.endswith(suffix) or stem in skip:
                continue
            tunes = _abc_tunes(path)
            if len(tunes) == 1:
                out.append(VoiceSource(f"{collection}/{stem}", group, path))
            else:
                out += [
                    VoiceSource(f"{collection}/{stem}#{k}", group, path, tune=k)
                    for k in range(len(tunes))
                ]
    return tuple(out)


def voice_sources() -> list[VoiceSource]:
    """Every candidate line of the offline music21 corpus, without parsing any score.

    The 4 parts of every Bach chorale file (``.mxl``/``.xml``; works that turn out not to
    have exactly 4 singable parts are refused when an item tries them), each tune of the
    Essen folk songs and of the fiddle-tune collections (:data:`ABC_COLLECTIONS`). Listing
    takes under a second once per process (the ABC files are read and split at their
    ``X:`` lines); scores are parsed only by :func:`line_notes`.

    Returns:
        :class:`VoiceSource` list (chorales first, then the collections, in file order).
    """
    return list(_all_sources())


def _unit(text: str) -> float:
    """A fixed pseudo-random number in [0, 1) for a string (sha256)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2.0**64


def work_split(work: str, heldout: Sequence[str] = ()) -> str:
    """The split of a work: ``"test"`` for a held-out chorale, else by a hash of the name.

    Args:
        work: a :attr:`VoiceSource.work` name.
        heldout: held-out chorale names (``bach/bwv255``; :func:`~music.chorale_corpus
            .read_heldout`).

    Returns:
        ``"train"`` (90 % of the works), ``"valid"`` (5 %) or ``"test"`` (5 %).
    """
    if work in set(heldout):
        return "test"
    u = _unit(f"wb-voices-split|v1|{work}")
    if u < SPLIT_FRACTIONS["train"]:
        return "train"
    return "valid" if u < SPLIT_FRACTIONS["train"] + SPLIT_FRACTIONS["valid"] else "test"


def split_sources(split: str, heldout: Sequence[str] = ()) -> list[VoiceSource]:
    """The candidate lines of one split (:func:`work_split` of their work), in corpus order.

    Raises:
        ConfigError: unknown split.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
    return [s for s in _all_sources() if work_split(s.work, heldout) == split]


def _stream_line(score: Any) -> list[tuple[int, float, float, bool]]:
    """Notes ``(pitch, onset_ql, dur_ql, fermata)`` of the first part of a parsed ABC tune;
    chords give their highest note, chord symbols and grace notes are dropped, and
    overlapping notes are cut at the next onset."""
    from music21 import chord, expressions, harmony, note

    parts = getattr(score, "parts", None)
    stream = parts[0] if parts is not None and len(parts) else score
    found: dict[float, tuple[int, float, bool]] = {}
    for n in stream.flatten().stripTies().notes:
        ql = float(n.quarterLength)
        if ql <= 0 or isinstance(n, harmony.ChordSymbol):
            continue
        if isinstance(n, note.Note):
            pitch = int(n.pitch.midi)
        elif isinstance(n, chord.Chord) and len(n.pitches):
            pitch = max(int(p.midi) for p in n.pitches)
        else:
            continue
        fermata = any(isinstance(e, expressions.Fermata) for e in n.expressions)
        onset = float(n.offset)
        if onset not in found or pitch > found[onset][0]:
            found[onset] = (pitch, ql, fermata)
    onsets = sorted(found)
    out = []
    for k, onset in enumerate(onsets):
        pitch, ql, fermata = found[onset]
        if k + 1 < len(onsets):
            ql = min(ql, onsets[k + 1] - onset)
        out.append((pitch, onset, ql, fermata))
    return out


@functools.lru_cache(maxsize=1024)
def _line(source: VoiceSource, cache_dir: str | None) -> tuple[tuple[int, float, float, bool], ...]:
    if source.group == "chorale":
        rec = _chorale_record(source.work, cache_dir)
        if rec.get("status") != "ok":
            raise WbError(f"{source.work}: {rec.get('reason', 'not a 4-part chorale')}")
        return tuple(
            (int(p), float(o), float(d), bool(f)) for p, o, d, f in rec["parts"][source.part]
        )
    from music21 import converter

    tunes = _abc_tunes(source.path)
    text = tunes[source.tune or 0]
    try:
        score = converter.parse("%abc-2.1\n" + text, format="abc")
    except Exception as exc:  # noqa: BLE001 - any music21 failure refuses the tune
        raise WbError(f"{source.work}: could not be parsed ({type(exc).__name__})") from None
    return tuple(_stream_line(score))


def line_notes(
    source: VoiceSource, cache_dir: str | os.PathLike | None = None
) -> list[tuple[int, float, float, bool]]:
    """Parse one line (cached per process).

    Args:
        source: the line.
        cache_dir: root of the chorale parse cache (:func:`music.chorale_corpus.load_works`;
            default :func:`wb.paths.cache_root`).

    Returns:
        Notes ``(midi_pitch, onset_ql, duration_ql, fermata)`` sorted by onset, times in
        quarter notes; monophonic (a note never reaches past the next onset).

    Raises:
        WbError: the score cannot be parsed, or a chorale does not have exactly 4 singable
            parts.
    """
    return list(_line(source, None if cache_dir is None else str(cache_dir)))


@functools.lru_cache(maxsize=512)
def _chorale_record(work: str, cache_dir: str | None) -> dict[str, Any]:
    from music import chorale_corpus as cc

    return cc.load_works([work], cc.corpus_works(), cache_dir=cache_dir, quiet=True)[work]


@functools.lru_cache(maxsize=8)
def _heldout_tunes(heldout: tuple[str, ...], cache_dir: str | None) -> dict[str, list[int]]:
    """``{held-out chorale: soprano MIDI pitches}``."""
    from music import chorale_corpus as cc

    if not heldout:
        return {}
    works = cc.load_works(heldout, cc.corpus_works(), cache_dir=cache_dir, quiet=True)
    bad = [h for h in heldout if works[h].get("status") != "ok"]
    if bad:
        raise ConfigError(
            f"held-out chorale(s) {', '.join(bad)} could not be read as 4-part chorales, so "
            "their melodies cannot be kept out of train/valid"
        )
    return {h: cc.soprano_pitches(works[h]) for h in heldout}


def heldout_tune(
    source: VoiceSource, heldout: Sequence[str], cache_dir: str | os.PathLike | None = None
) -> str | None:
    """The held-out chorale whose melody ``source`` carries, or None.

    A chorale part counts through its work's soprano (another harmonisation of a held-out
    tune is caught whichever part is asked for); any other line is compared itself, with
    :func:`music.chorale_corpus.same_tune`.

    Raises:
        WbError: ``source`` cannot be parsed. ConfigError: a held-out chorale cannot.
    """
    from music import chorale_corpus as cc

    if source.work in set(heldout):
        return source.work
    cdir = None if cache_dir is None else str(cache_dir)
    tunes = _heldout_tunes(tuple(heldout), cdir)
    if not tunes:
        return None
    if source.group == "chorale":
        mine = [p for p, *_ in _line(replace(source, part="soprano"), cdir)]
    else:
        mine = [p for p, *_ in _line(source, cdir)]
    return next((h for h, tune in tunes.items() if cc.same_tune(mine, tune)), None)


def item_seed(seed: int, split: str, index: int) -> int:
    """The seed of one item: a hash of ``(seed, split, index)`` (63 bits)."""
    digest = hashlib.sha256(f"wb-voices|v{VERSION}|{seed}|{split}|{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _item_group(seed: int, split: str, index: int) -> str:
    u = _unit(f"wb-voices-group|{seed}|{split}|{index}")
    acc = 0.0
    for group, w in GROUP_WEIGHTS.items():
        acc += w / sum(GROUP_WEIGHTS.values())
        if u < acc:
            return group
    return group


@functools.lru_cache(maxsize=32)
def _order(seed: int, split: str, group: str, heldout: tuple[str, ...]) -> tuple[VoiceSource, ...]:
    pool = [s for s in split_sources(split, heldout) if s.group == group]
    rng = np.random.default_rng(int(_unit(f"wb-voices-order|{seed}|{split}|{group}") * 2**62))
    return tuple(pool[int(i)] for i in rng.permutation(len(pool)))


def item_source(
    seed: int,
    split: str,
    index: int,
    heldout: Sequence[str] = (),
    cache_dir: str | os.PathLike | None = None,
    attempts: int = 30,
) -> tuple[VoiceSource, list[tuple[int, float, float, bool]]]:
    """The line an item sings, a function of ``(seed, split, index)`` only.

    The item's group is drawn by a hash (:data:`GROUP_WEIGHTS`); it takes the next line of
    that group in a seeded shuffle of the split's lines (so items of a split use distinct
    lines until a group runs out, then wrap round). A line that cannot be parsed, has fewer
    than :data:`MIN_NOTES` notes, or (train / valid) carries a held-out melody
    (:func:`heldout_tune`) is replaced by a line at a hashed position.

    Returns:
        ``(source, notes)`` with notes as :func:`line_notes` gives them.

    Raises:
        ConfigError: unknown split. WbError: no usable line in ``attempts`` tries.
    """
    held = tuple(heldout)
    group = _item_group(seed, split, index)
    position = sum(_item_group(seed, split, j) == group for j in range(index))
    order = _order(seed, split, group, held)
    if not order:
        raise WbError(f"no {group} lines in the {split} split")
    reasons = []
    for attempt in range(attempts):
        if attempt == 0:
            pos = position % len(order)
        else:
            pos = int(_unit(f"wb-voices-retry|{seed}|{split}|{index}|{attempt}") * len(order))
        source = order[pos]
        try:
            notes = line_notes(source, cache_dir)
            if len(notes) < MIN_NOTES:
                raise WbError(f"{source.name}: {len(notes)} notes")
            if split != "test" and heldout_tune(source, held, cache_dir):
                raise WbError(f"{source.name}: the tune of a held-out chorale")
        except WbError as exc:
            reasons.append(str(exc))
            continue
        return source, notes
    raise WbError(f"{split} item {index}: no usable line in {attempts} tries (last: {reasons[-1]})")


# ---------------------------------------------------------------------------------- plan
def _tick(t: float) -> float:
    """A time rounded to the MIDI files' tick grid (1/1920 s)."""
    return round(t * TICKS_PER_SECOND) / TICKS_PER_SECOND


def plan_line(
    line: Sequence[tuple[int, float, float, bool]],
    rng: np.random.Generator,
    seconds: tuple[float, float] = (8.0, 20.0),
) -> tuple[list[TimedNote], dict[str, Any]]:
    """Cut, time and transpose an excerpt of a line as a sight-singer would sing it.

    Draws, in order: the tempo (a median inter-onset interval log-uniform in
    :data:`IOI_SECONDS`, converted to bpm and kept within :data:`BPM_LIMITS`), the excerpt
    length ``U(*seconds)`` and its first note (any note that leaves enough of the line; the
    whole line when it is shorter), a slow rubato (up to +-12 % tempo, periods 4-15 s) and
    per-note jitter (log-normal, sigma up to 0.06), the detachment (each note shortened by
    ``N(d, 0.1)`` of its length clipped to 0-40 %, where ``d ~ U(0.1, 0.3)``; a share
    ``U(0, 0.15)`` of the notes legato), hesitations (a pause of 0.15-0.7 s before a note,
    with a chance ``U(0, 0.1)`` per note, doubled before a leap of 5 semitones or more), the
    singer (:data:`SINGERS`) and the transposition putting the excerpt's median at a point
    of the singer's range that keeps the excerpt inside it when it fits, and the velocities
    (a level ``U(55, 110)`` +- 10 per note). Rests are capped at :data:`MAX_REST`; after a
    fermata the note is held 1.3-2x and a breath pause of 0.2-0.6 s follows. The first note
    starts after 0.3-1.2 s of silence. All times lie on the MIDI tick grid (1/1920 s).
    With these, note durations and gaps come out close to SSVD's (200 train items: 10/50/90 %
    note durations 0.20/0.40/0.78 s against SSVD's 0.21/0.39/0.85 s; gaps 0.00/0.09/0.34 s
    against 0.03/0.11/0.54 s; pitches MIDI 53/63/71 against 54/64/71).

    Args:
        line: ``(midi_pitch, onset_ql, duration_ql, fermata)`` notes, sorted, monophonic.
        rng: the item's generator.
        seconds: ``(min, max)`` excerpt length in seconds (from the first onset to the last
            offset).

    Returns:
        ``(notes, info)``: :class:`~music.synth.TimedNote` list (monophonic: each ``end`` at
        most the next ``start``; at least 10 ms of silence before a repeated pitch) and the
        choices (``bpm``, ``transpose``, ``singer``, ``singer_range``, ``start_note``,
        ``detach``, ``legato``, ``hesitate``, ``rubato``, ``jitter``, ``lead_s``,
        ``excerpt_s``).

    Raises:
        WbError: the excerpt has fewer than :data:`MIN_NOTES` notes or spans more than
            :data:`MAX_SPAN` semitones.
    """
    pitch = np.array([n[0] for n in line], dtype=int)
    onset = np.array([n[1] for n in line], dtype=float)
    dur = np.array([n[2] for n in line], dtype=float)
    fermata = np.array([bool(n[3]) for n in line])
    if len(pitch) < MIN_NOTES:
        raise WbError(f"the line has {len(pitch)} notes (need {MIN_NOTES})")
    ioi = np.append(np.diff(onset), dur[-1])
    ioi = np.where(ioi > 0, ioi, dur)
    target = math.exp(rng.uniform(math.log(IOI_SECONDS[0]), math.log(IOI_SECONDS[1])))
    bpm = float(np.clip(60.0 * float(np.median(ioi)) / target, *BPM_LIMITS))
    spq = 60.0 / bpm
    length = float(rng.uniform(*seconds))
    # score seconds from each note to the end of the line (rests capped)
    ioi_s = np.minimum(ioi * spq, dur * spq + MAX_REST)
    remaining = np.cumsum(ioi_s[::-1])[::-1]
    starts = np.flatnonzero(remaining >= length)
    first = int(rng.integers(0, len(starts))) if len(starts) else 0
    rubato = float(rng.uniform(0.0, 0.12))
    periods = rng.uniform(4.0, 15.0, size=2)
    phases = rng.uniform(0.0, 2 * np.pi, size=2)
    jitter = float(rng.uniform(0.0, 0.06))
    detach = float(rng.uniform(0.1, 0.3))
    legato = float(rng.uniform(0.0, 0.15))
    hesitate = float(rng.uniform(0.0, 0.1))
    lead = float(rng.uniform(0.3, 1.2))
    times: list[list[float]] = []  # [pitch, start, end]
    t = lead
    for k in range(first, len(pitch)):
        factor = 1.0 + rubato * 0.5 * sum(np.sin(2 * np.pi * t / periods + phases))
        factor *= math.exp(rng.normal(0.0, jitter)) if jitter > 0 else 1.0
        step = ioi_s[k] * factor
        sound = min(dur[k] * spq * factor, step)
        pause = 0.0
        if fermata[k]:
            sound *= float(rng.uniform(1.3, 2.0))
            pause = float(rng.uniform(0.2, 0.6))
            step = max(step, sound) + pause
        if rng.random() >= legato:
            sound *= 1.0 - float(np.clip(rng.normal(detach, 0.1), 0.0, 0.4))
        leap = k + 1 < len(pitch) and abs(int(pitch[k + 1]) - int(pitch[k])) >= 5
        if rng.random() < hesitate * (2 if leap else 1):
            step = max(step, sound) + float(rng.uniform(0.15, 0.7))
        if t - lead + sound > length and len(times) >= 1:
            break
        times.append([float(pitch[k]), t, t + max(sound, 0.06)])
        t += max(step, 0.07)
    if len(times) < MIN_NOTES:
        raise WbError(f"the excerpt has {len(times)} notes (need {MIN_NOTES})")
    ps = np.array([n[0] for n in times])
    span = int(ps.max() - ps.min())
    if span > MAX_SPAN:
        raise WbError(f"the excerpt spans {span} semitones (more than {MAX_SPAN})")
    singer = "male" if rng.random() < MALE_SHARE else "female"
    lo = SINGERS[singer][0] + int(rng.integers(-2, 3))
    hi = SINGERS[singer][1] + int(rng.integers(-2, 3))
    med = float(np.median(ps))
    a, b = lo + (med - ps.min()), hi - (ps.max() - med)
    goal = float(rng.uniform(a, b)) if a <= b else (lo + hi) / 2.0
    shift = int(round(goal - med))
    level = float(rng.uniform(55, 110))
    notes: list[TimedNote] = []
    for k, (p, s, e) in enumerate(times):
        key = int(p) + shift
        while key < PITCH_LIMITS[0]:
            key += 12
        while key > PITCH_LIMITS[1]:
            key -= 12
        end = e
        if k + 1 < len(times):
            nxt = times[k + 1][1]
            end = min(end, nxt - (0.01 if int(times[k + 1][0]) == int(p) else 0.0))
        s, end = _tick(s), _tick(end)
        vel = int(np.clip(round(level + rng.normal(0.0, 10.0)), 20, 127))
        notes.append(TimedNote(key, s, max(end, s + 0.03), vel))
    info = {
        "bpm": round(bpm, 3), "transpose": shift, "singer": singer, "singer_range": [lo, hi],
        "start_note": first, "detach": round(detach, 4), "legato": round(legato, 4),
        "hesitate": round(hesitate, 4),
        "rubato": round(rubato, 4), "jitter": round(jitter, 4), "lead_s": round(lead, 4),
        "excerpt_s": round(length, 3),
    }  # fmt: skip
    return notes, info


# --------------------------------------------------------------------------- performance
@dataclass(frozen=True)
class Performance:
    """How one line is sung (drawn once per line by :func:`draw_performance`). The defaults
    sing exactly: no pitch error, vibrato, glide, swell or noise; constant full expression.

    Attributes:
        tuning_cents: constant offset of the whole line (the singer's reference), cents.
        note_cents: largest constant error of a note; each note draws ``U(-x, x)`` cents.
        drift: ``(period_s, cents, phase)`` of two slow sinusoids whose sum is the drift.
        vibrato_cents: vibrato depth (peak deviation) in cents; 0 is none.
        vibrato_rate: Hz.
        vibrato_delay: seconds for the depth to reach full after each onset.
        vibrato_phase: radians at time 0.
        glide_prob: chance that a note glides from the previous pitch (when that note ended
            less than :data:`GLIDE_GAP` before).
        scoop_prob: chance that a note (not gliding) scoops up from below.
        glide_seconds: ``(min, max)`` duration of a glide or scoop.
        scoop_cents: largest start of a scoop below the note (each draws ``U(30, x)``).
        dynamics: ``(period_s, amplitude, phase)`` of the three sinusoids of the CC11 phrase
            curve (:func:`music.chorales.performance.expression_curve`).
        expression_floor: lowest value of that curve (127: constant).
        attack_level: a note starts at this fraction of its expression (1: no swell) ...
        attack_seconds: ... and reaches full expression after this long.
        taper: the expression falls by this fraction over each note's last 30 %.
        breath_prob: chance of a breath noise in a gap of at least 0.3 s.
        breath_db: breath level relative to the voice RMS (dB).
        syllables: sing solfege syllables (consonant noise before the onsets) or a vowel.
        consonant_db: consonant level relative to the voice RMS (dB).
    """

    tuning_cents: float = 0.0
    note_cents: float = 0.0
    drift: tuple[tuple[float, float, float], ...] = ()
    vibrato_cents: float = 0.0
    vibrato_rate: float = 5.5
    vibrato_delay: float = 0.3
    vibrato_phase: float = 0.0
    glide_prob: float = 0.0
    scoop_prob: float = 0.0
    glide_seconds: tuple[float, float] = (0.03, 0.15)
    scoop_cents: float = 150.0
    dynamics: tuple[tuple[float, float, float], ...] = ((10.0, 1.0, 0.0),)
    expression_floor: int = 127
    attack_level: float = 1.0
    attack_seconds: float = 0.05
    taper: float = 0.0
    breath_prob: float = 0.0
    breath_db: float = -24.0
    syllables: bool = False
    consonant_db: float = -20.0


def draw_performance(rng: np.random.Generator) -> Performance:
    """Draw a sight-singer's :class:`Performance`.

    Ranges: tuning +-10 cents, note errors up to ``U(0, 28)`` cents, drift up to 10 cents
    (periods 5-20 s; pitch stays within 48 cents of the written note outside vibrato and
    glides), vibrato ``U(0, 60)`` cents at 4.5-6.5 Hz fading in over 0.15-0.45 s
    (:func:`music.chorales.performance.draw_expression`; none in 25 % of the lines), glides
    with chance ``U(0, 0.6)``, scoops ``U(0, 0.4)`` from up to 60-200 cents below,
    30-150 ms long, CC11 floor 60-115, note swells from 0.4-1.0 over 30-200 ms, a taper of
    0-25 %, breaths in ``U(0, 0.8)`` of the long gaps at -40 to -22 dB, and solfege
    consonants in 50 % of the lines at -28 to -14 dB.
    """
    from music.chorales.performance import draw_expression

    expr = draw_expression(rng, vibrato_cents=60.0, detune_cents=10.0)
    vibrato = expr.vibrato_cents if rng.random() >= 0.25 else 0.0
    drift_cents = float(rng.uniform(0.0, 10.0))
    drift = tuple(
        (round(float(rng.uniform(5.0, 20.0)), 3), round(drift_cents / 2, 3),
         round(float(rng.uniform(0.0, 2 * np.pi)), 4))
        for _ in range(2)
    )  # fmt: skip

    def r(lo: float, hi: float, nd: int = 4) -> float:
        return round(float(rng.uniform(lo, hi)), nd)

    glide_lo = r(0.03, 0.08)
    return Performance(
        tuning_cents=expr.detune_cents, note_cents=r(0.0, 28.0, 3), drift=drift,
        vibrato_cents=vibrato, vibrato_rate=expr.vibrato_rate, vibrato_delay=expr.vibrato_delay,
        vibrato_phase=expr.phase, glide_prob=r(0.0, 0.6), scoop_prob=r(0.0, 0.4),
        glide_seconds=(glide_lo, r(glide_lo, 0.15)), scoop_cents=r(60.0, 200.0, 2),
        dynamics=expr.dynamics, expression_floor=int(rng.integers(60, 116)),
        attack_level=r(0.4, 1.0), attack_seconds=r(0.03, 0.2), taper=r(0.0, 0.25),
        breath_prob=r(0.0, 0.8), breath_db=r(-40.0, -22.0, 2),
        syllables=bool(rng.random() < 0.5), consonant_db=r(-28.0, -14.0, 2),
    )  # fmt: skip


@dataclass(frozen=True)
class Acoustics:
    """How one line is recorded (drawn once per line by :func:`draw_acoustics`). The defaults
    are a clean studio take: dry, flat, no noise, peak at -1 dBFS, a 0.5 s tail.

    Attributes:
        tail_s: seconds kept after the last note-off.
        rt60: reverberation time of the room in seconds; 0 is dry (no room).
        wet_db: reverberant-to-direct energy ratio (dB).
        eq_hz: control points of the microphone equalisation (Hz); empty is flat.
        eq_db: gains at ``eq_hz`` (dB).
        phone: a 300-3400 Hz telephone band (4th-order Butterworth band-pass).
        noise: ``"none"``, ``"white"``, ``"pink"``, ``"brown"``, ``"hum50"`` or ``"hum60"``
            (mains harmonics over a white floor 20 dB lower).
        snr_db: voice-to-noise ratio over the notes' span (dB).
        peak_db: peak level of the written file (dBFS).
        seed: seed of the impulse response and the noise.
    """

    tail_s: float = 0.5
    rt60: float = 0.0
    wet_db: float = -10.0
    eq_hz: tuple[float, ...] = ()
    eq_db: tuple[float, ...] = ()
    phone: bool = False
    noise: str = "none"
    snr_db: float = 40.0
    peak_db: float = -1.0
    seed: int = 0


NOISES = ("white", "pink", "brown", "hum50", "hum60")


def draw_acoustics(rng: np.random.Generator, sample_rate: int) -> Acoustics:
    """Draw an :class:`Acoustics`: a room in 75 % of the lines (RT60 0.1-0.8 s,
    reverberant-to-direct -18 to -4 dB; :func:`music.chorales.performance.draw_room`, whose
    microphone EQ, +-6 dB at six points, every line gets), a phone band in 30 %, noise
    (white 25 %, pink 30 %, brown 20 %, hum 50 / 60 Hz 12.5 % each) at 10-40 dB SNR, a peak
    of -20 to -1 dBFS and a tail of 0.4-1.2 s."""
    from music.chorales.performance import draw_room

    room = draw_room(rng, ["voice"], (0.1, 0.8), (-18.0, -4.0), 6.0, (0.0, 0.0), sample_rate)
    dry = bool(rng.random() < 0.25)
    noise = str(rng.choice(NOISES, p=[0.25, 0.30, 0.20, 0.125, 0.125]))
    return Acoustics(
        tail_s=round(float(rng.uniform(0.4, 1.2)), 3),
        rt60=0.0 if dry else room.rt60,
        wet_db=room.wet_db["voice"],
        eq_hz=room.eq_hz,
        eq_db=room.eq_db,
        phone=bool(rng.random() < 0.3),
        noise=noise,
        snr_db=round(float(rng.uniform(10.0, 40.0)), 2),
        peak_db=round(float(rng.uniform(-20.0, -1.0)), 2),
        seed=room.seed,
    )


# ------------------------------------------------------------------------------------ MIDI
def write_line_midi(
    notes: Sequence[TimedNote],
    path: str | os.PathLike,
    program: int,
    bends: Sequence[Sequence[tuple[float, float]]] = (),
    expression: Sequence[Sequence[tuple[float, int]]] = (),
    bend_range: int = BEND_RANGE,
) -> Path:
    """Write a monophonic line whose notes alternate between MIDI channels 1 and 2.

    Both channels get the same program and, at the start, a pitch-bend range of
    ``bend_range`` semitones through RPN 0 (CC101 = 0 and CC100 = 0 at 0 s, CC6 =
    ``bend_range`` at 5 ms, CC38 = 0 at 10 ms; then the RPN is deselected with CC101 = CC100
    = 127 at 15 ms: events at one tick are sorted by controller number when written, which
    would put the data entry before the selection). A note's bend and CC11 events play on
    its own channel, so they never bend or swell the release of the note before. The file
    runs at 120 bpm, 960 ticks per quarter (ticks of 1/1920 s).

    Args:
        notes: the notes (sorted by start; the first should start after 20 ms).
        path: destination ``.mid``.
        program: 0-based General MIDI program.
        bends: for each note, ``(time_s, cents)`` deviations from its pitch (clipped to the
            bend range; 8192 steps per ``bend_range`` semitones).
        expression: for each note, ``(time_s, value)`` CC11 events (0..127).
        bend_range: semitones, 1..24.

    Returns:
        The written path.

    Raises:
        ConfigError: ``bends`` or ``expression`` is not empty and not one list per note, or
            the bend range is out of range.
    """
    import pretty_midi

    if not 1 <= int(bend_range) <= 24:
        raise ConfigError(f"bend_range {bend_range} is not 1..24 semitones")
    for what, seq in (("bends", bends), ("expression", expression)):
        if len(seq) and len(seq) != len(notes):
            raise ConfigError(f"{what}: {len(seq)} lists for {len(notes)} notes")
    pm = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)
    chans = [pretty_midi.Instrument(program=int(program), name=f"voice {c}") for c in (1, 2)]
    limit = int(bend_range) * 100.0
    for inst in chans:
        inst.control_changes += [
            pretty_midi.ControlChange(101, 0, 0.0), pretty_midi.ControlChange(100, 0, 0.0),
            pretty_midi.ControlChange(6, int(bend_range), 0.005),
            pretty_midi.ControlChange(38, 0, 0.010),
            pretty_midi.ControlChange(101, 127, 0.015),
            pretty_midi.ControlChange(100, 127, 0.015),
        ]  # fmt: skip
    for k, n in enumerate(notes):
        inst = chans[k % 2]
        inst.notes.append(pretty_midi.Note(int(n.velocity), int(n.pitch), n.start, n.end))
        last = None
        for t, cents in bends[k] if len(bends) else ():
            v = int(np.clip(round(float(cents) / limit * 8192), -8192, 8191))
            if v != last:
                inst.pitch_bends.append(pretty_midi.PitchBend(v, float(t)))
                last = v
        last = None
        for t, value in expression[k] if len(expression) else ():
            v = int(np.clip(value, 0, 127))
            if v != last:
                inst.control_changes.append(pretty_midi.ControlChange(11, v, float(t)))
                last = v
    pm.instruments.extend(chans)
    pm.write(str(path))
    return Path(path)


def _note_spans(notes: Sequence[TimedNote], duration: float) -> list[tuple[float, float]]:
    """For each note, the time its channel plays its curves: from its onset to the onset of
    the next note on the same channel (two notes later), or ``duration``."""
    out = []
    for k, n in enumerate(notes):
        stop = notes[k + 2].start if k + 2 < len(notes) else duration
        out.append((n.start, max(stop, n.start + BEND_STEP)))
    return out


def pitch_curves(
    notes: Sequence[TimedNote], perf: Performance, rng: np.random.Generator, duration: float
) -> tuple[list[list[tuple[float, float]]], dict[str, list]]:
    """Per-note pitch deviations in cents (:data:`BEND_STEP` apart): the line's tuning, the
    note's constant error, the drift, a vibrato that fades in after the onset and a glide
    from the previous pitch or a scoop from below that eases (half-cosine) to zero.

    Args:
        notes: the line.
        perf: its performance.
        rng: draws each note's error, onset kind and glide time.
        duration: seconds of audio (the last notes' curves run until then).

    Returns:
        ``(curves, detail)``: for each note ``[(time_s, cents), ...]`` from its onset to the
        next onset on its channel; ``detail`` has per-note lists ``cents`` (the constant
        error), ``onset`` (``"plain"``, ``"glide"`` or ``"scoop"``) and ``glide_s``.
    """
    curves, detail = [], {"cents": [], "onset": [], "glide_s": []}
    limit = BEND_RANGE * 100.0 - 100.0
    for k, (n, (a, b)) in enumerate(zip(notes, _note_spans(notes, duration), strict=True)):
        error = float(rng.uniform(-perf.note_cents, perf.note_cents)) if perf.note_cents else 0.0
        glide_s = float(rng.uniform(*perf.glide_seconds))
        u_glide, u_scoop = rng.random(), rng.random()
        scoop = float(rng.uniform(30.0, max(perf.scoop_cents, 30.0)))
        start_cents, kind = 0.0, "plain"
        near = k > 0 and n.start - notes[k - 1].end < GLIDE_GAP
        if near and u_glide < perf.glide_prob and notes[k - 1].pitch != n.pitch:
            start_cents = float(np.clip((notes[k - 1].pitch - n.pitch) * 100.0, -limit, limit))
            kind = "glide"
        elif u_scoop < perf.scoop_prob:
            start_cents, kind = -scoop, "scoop"
        t = np.arange(a, b, BEND_STEP)
        since = t - n.start
        cents = perf.tuning_cents + error + np.zeros_like(t)
        for period, amp, phase in perf.drift:
            cents += amp * np.sin(2 * np.pi * t / period + phase)
        if perf.vibrato_cents:
            ramp = np.clip(since / max(perf.vibrato_delay, 1e-3), 0.0, 1.0)
            cents += (
                perf.vibrato_cents
                * ramp
                * np.sin(2 * np.pi * perf.vibrato_rate * t + perf.vibrato_phase)
            )
        if kind != "plain":
            x = np.clip(since / glide_s, 0.0, 1.0)
            cents += start_cents * 0.5 * (1.0 + np.cos(np.pi * x))
        curves.append([(round(float(x), 4), float(c)) for x, c in zip(t, cents, strict=True)])
        detail["cents"].append(round(error, 2))
        detail["onset"].append(kind)
        detail["glide_s"].append(round(glide_s, 4) if kind != "plain" else 0.0)
    return curves, detail


def expression_curves(
    notes: Sequence[TimedNote], perf: Performance, duration: float
) -> list[list[tuple[float, int]]]:
    """Per-note CC11 events (:data:`CC_STEP` apart): the phrase curve
    (:func:`music.chorales.performance.expression_curve`) times a swell from
    ``attack_level`` to 1 over ``attack_seconds`` and a taper over the note's last 30 %."""
    from music.chorales.performance import PartExpression, expression_curve

    expr = PartExpression(0.0, 0.0, 5.0, 0.3, 0.0, perf.dynamics)
    phrase = expression_curve(expr, duration + CC_STEP, perf.expression_floor)
    pt = np.array([t for t, _ in phrase])
    pv = np.array([v for _, v in phrase], dtype=float)
    out = []
    for n, (a, b) in zip(notes, _note_spans(notes, duration), strict=True):
        t = np.arange(a, b, CC_STEP)
        base = pv[np.clip(np.searchsorted(pt, t, side="right") - 1, 0, len(pv) - 1)]
        swell = perf.attack_level + (1 - perf.attack_level) * np.clip(
            (t - n.start) / max(perf.attack_seconds, 1e-3), 0.0, 1.0
        )
        length = max(n.end - n.start, 1e-3)
        taper = 1.0 - perf.taper * np.clip((t - n.start - 0.7 * length) / (0.3 * length), 0, 1)
        values = np.clip(np.round(base * swell * taper), 1, 127).astype(int)
        out.append([(round(float(x), 4), int(v)) for x, v in zip(t, values, strict=True)])
    return out


# ---------------------------------------------------------------------------------- audio
def _band_noise(rng: np.random.Generator, n: int, lo: float, hi: float, sr: int) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    hi = min(hi, 0.45 * sr)
    lo = min(lo, hi / 1.5)
    x = rng.standard_normal(n + 256)
    sos = butter(2, (lo, hi), "bandpass", fs=sr, output="sos")
    y = sosfilt(sos, x)[256:]
    return y / max(float(np.std(y)), 1e-12)


def _add_burst(x: np.ndarray, burst: np.ndarray, start: int, rms: float) -> None:
    start = max(0, start)
    stop = min(len(x), start + len(burst))
    if stop > start:
        x[start:stop] += burst[: stop - start] * rms


def _consonant(syllable: str, rng: np.random.Generator, sr: int) -> np.ndarray | None:
    """A unit-RMS (at its loudest) noise for the consonant of a solfege syllable, or None."""
    c = syllable[0]
    if c in "dt":  # plosive: a short burst (t with some aspiration)
        n = int(sr * (rng.uniform(0.006, 0.015) if c == "d" else rng.uniform(0.02, 0.045)))
        y = _band_noise(rng, n, 500.0 if c == "d" else 2500.0, 6000.0, sr)
        return y * np.exp(-np.linspace(0.0, 4.0, n))
    if c in "fs":  # fricative
        n = int(sr * rng.uniform(0.05, 0.11))
        lo, hi = (1500.0, 6500.0) if c == "f" else (3800.0, 7800.0)
        return _band_noise(rng, n, lo, hi, sr) * np.hanning(n) * (0.5 if c == "f" else 1.0)
    return None


def _background(kind: str, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Unit-RMS background noise of a kind (see :class:`Acoustics`)."""
    if kind.startswith("hum"):
        f0 = float(kind[3:])
        t = np.arange(n) / sr
        y = np.zeros(n)
        for h in range(1, int(min(12, 0.45 * sr / f0)) + 1):
            amp = rng.uniform(0.2, 1.0) / h ** rng.uniform(0.5, 1.5)
            y += amp * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi))
        y /= max(float(np.std(y)), 1e-12)
        return y + 0.1 * rng.standard_normal(n)
    white = rng.standard_normal(n)
    if kind == "white":
        return white
    spec = np.fft.rfft(white)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    f[0] = f[1] if n > 1 else 1.0
    spec /= np.sqrt(f) if kind == "pink" else f
    y = np.fft.irfft(spec, n)
    y -= y.mean()
    return y / max(float(np.std(y)), 1e-12)


def _syllables(notes: Sequence[TimedNote]) -> list[str]:
    """Movable-do solfege of each note, with the last note as the tonic."""
    tonic = notes[-1].pitch % 12
    return [SOLFEGE[(n.pitch - tonic) % 12] for n in notes]


def render_line(
    notes: Sequence[TimedNote],
    dest_stem: str | os.PathLike,
    seed: int,
    sample_rate: int = 16000,
    soundfont: str | os.PathLike = "fluidr3",
    program: int = 53,
    performance: Performance | None = None,
    acoustics: Acoustics | None = None,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Sing, render and record one line; write ``<dest_stem>.flac``, ``.txt`` and ``.json``.

    The notes are written with :func:`write_line_midi` (pitch curves from
    :func:`pitch_curves`, CC11 from :func:`expression_curves`), rendered by FluidSynth
    (:func:`music.synth.render_midi`, its reverb and chorus off), cut at the last note-off
    plus ``acoustics.tail_s``; then breath and consonant noises are added to the dry voice,
    which goes through the room, the microphone EQ (delay compensated) and the phone band;
    the background noise is added at ``snr_db`` (against the RMS between the first onset
    and the last offset) and the result is scaled to ``peak_db``.

    Args:
        notes: the line (sorted, monophonic: each ``end`` at most the next ``start``), times
            in seconds; these are the target.
        dest_stem: output path without extension (folders are created).
        seed: seed of everything this function draws (performance and acoustics when not
            given, per-note choices, noises).
        sample_rate: Hz.
        soundfont: :data:`music.synth.SOUNDFONTS` name or ``.sf2``/``.sf3`` path.
        program: 0-based General MIDI program.
        performance: the singing (default: :func:`draw_performance`).
        acoustics: the recording (default: :func:`draw_acoustics`).
        meta: more entries for the ``.json`` (e.g. the work); they come first.

    Returns:
        The ``.json`` content: ``meta``, then ``seed``, ``soundfont``, ``program``,
        ``program_name``, ``sample_rate``, ``duration_s``, ``n_notes``, ``performance``,
        ``acoustics`` (dicts), ``note_detail`` (per-note ``velocity``, ``cents``,
        ``onset``, ``glide_s``, ``syllable``, ``breath_before``) and ``render_s`` (wall time).

    Raises:
        WbError: no notes, notes not sorted and monophonic, or the render is silent.
        DependencyError: FluidSynth or the sound font is missing.
    """
    import soundfile as sf
    from scipy.signal import butter, oaconvolve, sosfilt

    from music.chorales.performance import impulse_response, microphone_fir
    from music.synth import SOUNDFONTS, render_midi, soundfont_path
    from wb.runs import atomic_write, atomic_write_text

    t0 = time.perf_counter()
    notes = list(notes)
    if not notes:
        raise WbError("render_line: no notes")
    for a, b in zip(notes, notes[1:], strict=False):
        if b.start < a.start or a.end > b.start + 1e-9:
            raise WbError(f"render_line: notes not sorted and monophonic at {b.start:.3f} s")
    if any(n.end <= n.start or not 0 <= n.pitch <= 127 for n in notes):
        raise WbError("render_line: a note has end <= start or a pitch outside 0..127")
    ss = np.random.SeedSequence(int(seed))
    r_perf, r_notes, r_ac, r_noise = (np.random.default_rng(s) for s in ss.spawn(4))
    perf = performance if performance is not None else draw_performance(r_perf)
    ac = acoustics if acoustics is not None else draw_acoustics(r_ac, sample_rate)
    sr = int(sample_rate)
    duration = notes[-1].end + ac.tail_s
    n = int(round(duration * sr))
    bends, detail = pitch_curves(notes, perf, r_notes, duration)
    ccs = expression_curves(notes, perf, duration)
    with tempfile.TemporaryDirectory(prefix="wb-voice-") as tmp:
        mid = write_line_midi(notes, Path(tmp) / "line.mid", program, bends, ccs)
        x = render_midi(mid, Path(tmp) / "line.wav", sr, soundfont_path(str(soundfont)),
                        reverb=False)  # fmt: skip
    x = np.pad(x[:n].astype(np.float64), (0, max(0, n - len(x))))
    on, off = int(notes[0].start * sr), int(notes[-1].end * sr)
    voice_rms = float(np.sqrt(np.mean(x[on:off] ** 2))) if off > on else 0.0
    if voice_rms <= 1e-7:
        raise WbError(f"render_line: {dest_stem} rendered silent (program {program})")
    # breaths in long gaps (and before the first note), consonants before the onsets
    syllables = _syllables(notes) if perf.syllables else [""] * len(notes)
    breaths = []
    for k, note in enumerate(notes):
        gap = note.start - (notes[k - 1].end if k else 0.0)
        took = gap >= 0.3 and r_noise.random() < perf.breath_prob
        breaths.append(took)
        if took:
            length = min(gap - 0.05, float(r_noise.uniform(0.15, 0.45)))
            m = int(length * sr)
            centre = float(r_noise.uniform(800.0, 2500.0))
            burst = _band_noise(r_noise, m, centre / 1.8, centre * 1.8, sr) * np.hanning(m)
            end = note.start - float(r_noise.uniform(0.03, 0.1))
            rms = voice_rms * 10.0 ** (perf.breath_db / 20.0)
            _add_burst(x, burst, int((end - length) * sr), rms)
        if syllables[k]:
            burst = _consonant(syllables[k], r_noise, sr)
            if burst is not None:
                rms = voice_rms * 10.0 ** ((perf.consonant_db + r_noise.normal(0, 2)) / 20.0)
                _add_burst(x, burst, int(note.start * sr) - len(burst), rms)
    if ac.rt60 > 0:
        h = impulse_response(sr, ac.rt60, ac.wet_db, np.random.default_rng(ac.seed))
        x = oaconvolve(x, h)[:n]
    if ac.eq_hz:
        fir = microphone_fir(ac.eq_hz, ac.eq_db, sr)
        d = (len(fir) - 1) // 2
        x = oaconvolve(x, fir)[d : d + n]
    if ac.phone:
        x = sosfilt(butter(4, (300.0, min(3400.0, 0.45 * sr)), "bandpass", fs=sr,
                           output="sos"), x)  # fmt: skip
    if ac.noise != "none":
        level = float(np.sqrt(np.mean(x[on:off] ** 2))) * 10.0 ** (-ac.snr_db / 20.0)
        noise_rng = np.random.default_rng([ac.seed, 1])
        x = x + _background(ac.noise, noise_rng, n, sr) * level
    peak = float(np.abs(x).max())
    if not np.isfinite(peak) or peak <= 0:
        raise WbError(f"render_line: {dest_stem} came out silent or non-finite")
    # 16-bit: stay one step below full scale even at peak_db = 0
    y = (x * (10.0 ** (ac.peak_db / 20.0) / peak)).clip(-32767 / 32768, 32767 / 32768)
    stem = Path(dest_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    write = lambda tmp: sf.write(tmp, y.astype(np.float32), sr, format="FLAC",  # noqa: E731
                                 subtype="PCM_16")  # fmt: skip
    atomic_write(stem.with_name(stem.name + ".flac"), write)
    text = "".join(f"{a.start:.4f}\t{a.end:.4f}\t{int(a.pitch)}\n" for a in notes)
    atomic_write_text(stem.with_name(stem.name + ".txt"), text)
    font = str(soundfont)
    info: dict[str, Any] = {
        **dict(meta or {}),
        "seed": int(seed),
        "soundfont": font if font in SOUNDFONTS else soundfont_path(font),
        "program": int(program),
        "program_name": PROGRAMS.get(int(program), (f"GM {program}",))[0],
        "sample_rate": sr,
        "duration_s": round(n / sr, 4),
        "n_notes": len(notes),
        "performance": asdict(perf),
        "acoustics": asdict(ac),
        "note_detail": {
            "velocity": [int(a.velocity) for a in notes],
            **detail,
            "syllable": syllables,
            "breath_before": breaths,
        },  # fmt: skip
        "render_s": round(time.perf_counter() - t0, 3),
    }
    atomic_write_text(stem.with_name(stem.name + ".json"), json.dumps(info, indent=1) + "\n")
    return info


# -------------------------------------------------------------------------------- prepare
def item_paths(root: str | os.PathLike, split: str, index: int) -> dict[str, Path]:
    """``{"flac", "txt", "json"}`` paths of an item: ``<root>/<split>/<index:05d>.<ext>``."""
    stem = Path(root) / split / f"{index:05d}"
    return {ext: stem.with_name(f"{stem.name}.{ext}") for ext in ("flac", "txt", "json")}


def item_complete(root: str | os.PathLike, split: str, index: int) -> bool:
    """Whether all three files of an item exist (the ``.json`` is written last)."""
    return all(p.is_file() for p in item_paths(root, split, index).values())


def render_item(
    root: str | os.PathLike,
    split: str,
    index: int,
    seed: int = 0,
    sample_rate: int = 16000,
    seconds: tuple[float, float] = (8.0, 20.0),
    heldout: Sequence[str] = (),
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Render one item of :func:`prepare_voices` (overwriting it), from
    ``(seed, split, index)`` alone.

    Draws, from :func:`item_seed`: the line (:func:`item_source`; an excerpt that
    :func:`plan_line` refuses moves on to the next of its retries), the plan, the sound font
    (:data:`SPLIT_SOUNDFONTS`), the program (:data:`PROGRAMS`), then :func:`render_line`.

    Returns:
        The item's ``.json`` content (see :func:`render_line`), with ``id``, ``split``,
        ``index``, ``work``, ``line``, ``group``, ``part``, ``source``, ``plan``,
        ``version``.

    Raises:
        WbError: no usable line (see :func:`item_source`) or a failed render.
    """
    s = item_seed(seed, split, index)
    rng = np.random.default_rng(s)
    last: WbError | None = None
    for attempt in range(8):
        source, line = item_source(seed + 7919 * attempt, split, index, heldout, cache_dir)
        try:
            notes, plan = plan_line(line, rng, seconds)
            break
        except WbError as exc:
            last = WbError(f"{source.name}: {exc}")
    else:
        raise WbError(f"{split} item {index}: no line gave an excerpt ({last})")
    fonts = SPLIT_SOUNDFONTS[split]
    font = str(fonts[int(rng.integers(0, len(fonts)))])
    programs = list(PROGRAMS)
    weights = np.array([PROGRAMS[p][1] for p in programs])
    program = int(programs[int(rng.choice(len(programs), p=weights / weights.sum()))])
    corpus_file = source.path.split("/corpus/")[-1]
    meta = {
        "id": f"{index:05d}", "split": split, "index": int(index), "version": VERSION,
        "work": source.work, "line": source.name, "group": source.group, "part": source.part,
        "source": corpus_file, "plan": plan,
    }  # fmt: skip
    stem = item_paths(root, split, index)["flac"].with_suffix("")
    return render_line(notes, stem, int(rng.integers(0, 2**62)), sample_rate, font, program,
                       meta=meta)  # fmt: skip


def _job(args: tuple) -> dict[str, Any]:
    root, split, index = args[:3]
    t0 = time.perf_counter()
    try:
        info = render_item(*args)
        return {"split": split, "index": index, "error": None, "line": info["line"],
                "duration_s": info["duration_s"], "wall_s": time.perf_counter() - t0}  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - reported per item, the data set goes on
        error = str(exc) if isinstance(exc, WbError) else f"{type(exc).__name__}: {exc}"
        return {"split": split, "index": index, "error": error, "line": None,
                "duration_s": 0.0, "wall_s": time.perf_counter() - t0}  # fmt: skip


def default_heldout() -> Path:
    """``../shared/heldout_chorales.txt`` next to the repository checkout."""
    return Path(__file__).resolve().parents[3] / "shared" / "heldout_chorales.txt"


def _remove_stale_temps(folder: Path) -> None:
    if not folder.is_dir():
        return
    now = time.time()
    for p in folder.glob(".*.tmp"):
        try:
            if now - p.stat().st_mtime > _TMP_MAX_AGE:
                p.unlink()
        except OSError:
            pass


def _fmt_time(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def prepare_voices(
    root: str | os.PathLike,
    n_train: int = 600,
    n_valid: int = 40,
    n_test: int = 40,
    sample_rate: int = 16000,
    seconds: tuple[float, float] = (8.0, 20.0),
    seed: int = 0,
    jobs: int = 1,
    heldout: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = print,
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Render the synthetic sung-line data set into ``root`` (resumable, idempotent).

    Items ``0 .. n-1`` of each split are rendered by :func:`render_item` unless all their
    files exist; an interrupted run leaves no partial file (atomic writes) and resumes. The
    manifest is written first with ``"complete": false`` and rewritten at the end.

    Args:
        root: output folder.
        n_train, n_valid, n_test: items per split.
        sample_rate: Hz (8000..48000).
        seconds: ``(min, max)`` length of an excerpt in seconds (notes only; the file adds
            0.3-1.2 s before and 0.4-1.2 s after).
        seed: the data set's seed; items are functions of ``(seed, split, index)``.
        jobs: render processes.
        heldout: held-out chorale list; None: ``../shared/heldout_chorales.txt`` next to the
            repository when it exists, else none.
        log: called with one line per progress report (None: silent).
        cache_dir: root of the chorale parse cache (default :func:`wb.paths.cache_root`).

    Returns:
        ``{"root", "rendered": {split: n}, "skipped": {split: n}, "failed": {split: [error,
        ...]}, "counts": {split: complete items}, "hours": audio hours of the complete items,
        "seconds_per_item": wall seconds per rendered item (None when none was)}``.

    Raises:
        ConfigError: a bad argument, a missing held-out list given explicitly, or ``root``
            holding a data set made with another seed, rate, excerpt length or held-out list.
        DependencyError: FluidSynth or a needed sound font is missing.
    """
    from music.chorale_corpus import mp_context, read_heldout
    from music.synth import check_soundfont, find_fluidsynth
    from wb.runs import write_json

    say = log or (lambda _m: None)
    counts_wanted = {"train": int(n_train), "valid": int(n_valid), "test": int(n_test)}
    if min(counts_wanted.values()) < 0:
        raise ConfigError(f"item counts must be >= 0, got {counts_wanted}")
    if not 8000 <= int(sample_rate) <= 48000:
        raise ConfigError(f"sample_rate {sample_rate} is not 8000..48000 Hz")
    lo, hi = (float(s) for s in seconds)
    if not 1.0 <= lo <= hi:
        raise ConfigError(f"seconds {seconds} must be (min, max) with 1 <= min <= max")
    if int(jobs) < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs}")
    if heldout is None:
        held_path = default_heldout()
        held = read_heldout(held_path) if held_path.is_file() else []
        if not held:
            say(f"no held-out chorale list at {held_path}: none held out")
    else:
        held = read_heldout(heldout)
    find_fluidsynth()
    for split, n in counts_wanted.items():
        if n:
            for font in SPLIT_SOUNDFONTS[split]:
                check_soundfont(font)
    root = Path(root)
    config = {
        "version": VERSION, "seed": int(seed), "sample_rate": int(sample_rate),
        "seconds": [lo, hi], "heldout": held,
    }  # fmt: skip
    manifest = root / "manifest.json"
    if manifest.is_file():
        try:
            old = json.loads(manifest.read_text(encoding="utf-8")).get("config", {})
        except ValueError:
            old = {}
        if {k: old.get(k) for k in config} != config:
            raise ConfigError(
                f"{root} holds a data set made with other settings ({old}); use another root "
                "or delete it"
            )
    description = {
        "dataset": "wb synthetic sung lines (music.transcription.voices)",
        "config": config,
        "soundfonts": {s: list(f) for s, f in SPLIT_SOUNDFONTS.items()},
        "format": "<split>/<id>.flac (mono 16-bit) + <id>.txt (onset_s, offset_s, midi) "
                  "+ <id>.json (random choices)",
    }  # fmt: skip
    write_json(manifest, {**description, "complete": False, "requested": counts_wanted})
    for split in SPLITS:
        _remove_stale_temps(root / split)
    todo = [(split, i) for split in SPLITS for i in range(counts_wanted[split])]
    pending = [(s, i) for s, i in todo if not item_complete(root, s, i)]
    skipped = {s: sum(1 for t, _ in todo if t == s) for s in SPLITS}
    for s, _ in pending:
        skipped[s] -= 1
    say(f"voices: {len(todo) - len(pending)} of {len(todo)} items exist, rendering "
        f"{len(pending)} into {root} with {jobs} process(es)")  # fmt: skip
    args = [(str(root), s, i, int(seed), int(sample_rate), (lo, hi), tuple(held),
             None if cache_dir is None else str(cache_dir)) for s, i in pending]  # fmt: skip
    rendered = {s: 0 for s in SPLITS}
    failed: dict[str, list[str]] = {s: [] for s in SPLITS}
    t0 = time.perf_counter()
    done = 0

    def report(res: dict[str, Any]) -> None:
        nonlocal done
        done += 1
        split = res["split"]
        if res["error"]:
            failed[split].append(f"{res['index']:05d}: {res['error']}")
            say(f"[{done}/{len(pending)}] {split}/{res['index']:05d} FAILED: {res['error']}")
        else:
            rendered[split] += 1
        if res["error"] is None and (done <= 3 or done % 10 == 0 or done == len(pending)):
            spent = time.perf_counter() - t0
            eta = spent / done * (len(pending) - done)
            say(f"[{done}/{len(pending)}] {split}/{res['index']:05d} {res['line']} "
                f"{res['duration_s']:.1f} s audio in {res['wall_s']:.2f} s; "
                f"elapsed {_fmt_time(spent)}, ETA {_fmt_time(eta)}")  # fmt: skip

    if int(jobs) <= 1 or len(args) < 2:
        for a in args:
            report(_job(a))
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=int(jobs), mp_context=mp_context()) as pool:
            for res in pool.map(_job, args):
                report(res)
    wall = time.perf_counter() - t0
    counts, seconds_total = {}, 0.0
    for split in SPLITS:
        complete = [i for i in range(counts_wanted[split]) if item_complete(root, split, i)]
        counts[split] = len(complete)
        for i in complete:
            try:
                info = json.loads(item_paths(root, split, i)["json"].read_text(encoding="utf-8"))
                seconds_total += float(info.get("duration_s", 0.0))
            except (OSError, ValueError):
                pass
    n_rendered = sum(rendered.values())
    summary = {
        "root": str(root), "rendered": rendered, "skipped": skipped, "failed": failed,
        "counts": counts, "hours": round(seconds_total / 3600.0, 4),
        "seconds_per_item": round(wall / n_rendered, 3) if n_rendered else None,
    }  # fmt: skip
    complete = all(counts[s] == counts_wanted[s] for s in SPLITS)
    write_json(manifest, {**description, "complete": complete, "requested": counts_wanted,
                          "counts": counts, "hours": summary["hours"]})  # fmt: skip
    say(
        f"voices: {counts} complete items, {summary['hours']:.2f} h of audio, "
        f"{n_rendered} rendered in {_fmt_time(wall)}"
        + (f", {sum(len(v) for v in failed.values())} failed" if any(failed.values()) else "")
    )
    return summary
