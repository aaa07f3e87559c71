"""Chorale data-set settings (:class:`ChoraleConfig`), constants and per-piece seeds."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from music.chorale_corpus import (
    VOICES,
)
from music.synth import DEFAULT_SOUNDFONT, SOUNDFONTS, soundfont_path
from wb.errors import ConfigError

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
# diverse: per voice, instruments of six families that play in its register -- choir/voice
# (52-54), strings (violin 40, viola 41, cello 42, contrabass 43, ensemble 48), woodwinds
# (flute 73, oboe 68, English horn 69, clarinet 71, bassoon 70), reeds (soprano, alto, tenor,
# baritone sax 64-67), brass (trumpet 56, French horn 60, trombone 57, tuba 58) and organ
# (church 19, reed 20).
TIMBRES["diverse"] = {
    "soprano": (*_CHOIR, 40, 48, 73, 68, 71, 64, 56, 19, 20),
    "alto": (*_CHOIR, 40, 41, 48, 68, 69, 71, 65, 56, 60, 19, 20),
    "tenor": (*_CHOIR, 41, 42, 48, 69, 71, 70, 66, 60, 57, 19, 20),
    "bass": (*_CHOIR, 42, 43, 48, 70, 67, 57, 58, 19, 20),
}
# bach10: one fixed instrument per voice, the line-up of the Bach10 recordings (Duan & Pardo
# 2011, "Soundprism", IEEE JSTSP: violin, clarinet, tenor saxophone, bassoon), the kind of real
# four-part chorale recording the SATB model must generalise to. A held-out test condition, not
# for training.
TIMBRES["bach10"] = {"soprano": (40,), "alto": (71,), "tenor": (66,), "bass": (70,)}

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
        timbre: ``"choir"``, ``"ensemble"``, ``"mixed"``, ``"diverse"`` or ``"bach10"``
            (see :data:`TIMBRES`).
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
        soundfont: General MIDI ``.sf2``/``.sf3`` file (or a :data:`music.synth.SOUNDFONTS`
            name), used when ``soundfonts`` is not set.
        soundfonts: a pool of sound fonts (names or paths); each part of each rendition draws
            one (its own seeded stream), so one rendition mixes sample sets as a real ensemble
            mixes instruments. ``None``: ``soundfont`` for every part.
        expressive: play each part expressively (:mod:`music.chorales.performance`):
            detuning, vibrato, a CC11 dynamics curve and legato.
        vibrato_cents: largest vibrato depth (cents; each part draws ``U(0, max)``).
        detune_cents: largest per-part detuning (cents; drawn in ``[-max, max]``).
        legato: largest overlap (seconds) of a note into the next one of another pitch.
        expression_floor: lowest CC11 value of the dynamics curve (127: constant).
        room: put the parts in a room: a synthetic impulse response per part, a shared
            microphone equalisation and a noise floor per stem (the mixture stays the exact
            sum of the stems).
        rt60: ``[min, max]`` reverberation time in seconds.
        wet_db: ``[min, max]`` reverberant-to-direct energy ratio per part (dB).
        eq_db: largest microphone boost/cut (dB) at each equalisation point.
        noise_db: ``[min, max]`` noise floor of each stem relative to the mixture RMS (dB).
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
    soundfonts: Sequence[str] | None = None
    expressive: bool = False
    vibrato_cents: float = 30.0
    detune_cents: float = 10.0
    legato: float = 0.05
    expression_floor: int = 70
    room: bool = False
    rt60: tuple[float, float] = (0.3, 1.8)
    wet_db: tuple[float, float] = (-15.0, 0.0)
    eq_db: float = 6.0
    noise_db: tuple[float, float] = (-70.0, -50.0)
    fluidsynth: str = "fluidsynth"
    heldout: str = "../shared/heldout_chorales.txt"
    valid_fraction: float = 0.05
    cache_dir: str | None = None

    # Keys that do not change a rendition's audio (not compared when resuming).
    _NOT_RENDERING = ("renditions", "fluidsynth", "heldout", "valid_fraction", "cache_dir")
    # Keys that only matter when their switch is on (left out of render_dict when it is off,
    # so renders made before the switch existed stay valid).
    _EXPRESSIVE = ("expressive", "vibrato_cents", "detune_cents", "legato", "expression_floor")
    _ROOM = ("room", "rt60", "wet_db", "eq_db", "noise_db")

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
        for key, top in (("vibrato_cents", 100.0), ("detune_cents", 50.0), ("legato", 0.5)):
            val = getattr(self, key)
            if not _is_num(val) or not 0 <= val <= top:
                raise ConfigError(f"{key}={val!r} must be a number between 0 and {top}")
        if not _is_int(self.expression_floor) or not 1 <= self.expression_floor <= 127:
            raise ConfigError(
                f"expression_floor={self.expression_floor!r} must be an integer 1..127"
            )
        for key, lo, hi in (("rt60", 0.05, 5.0), ("wet_db", -40.0, 20.0), ("noise_db", -120, -20)):
            val = getattr(self, key)
            if (
                not isinstance(val, Sequence)
                or len(val) != 2
                or not all(_is_num(x) for x in val)
                or not lo <= val[0] <= val[1] <= hi
            ):
                raise ConfigError(
                    f"{key}={val!r} must be [min, max] with {lo} <= min <= max <= {hi}"
                )
        if not _is_num(self.eq_db) or not 0 <= self.eq_db <= 24:
            raise ConfigError(f"eq_db={self.eq_db!r} must be a number between 0 and 24")
        for key in ("humanize", "breaths", "reverb", "expressive", "room"):
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
        pool = self.soundfonts
        if pool is not None and (
            isinstance(pool, str)
            or not isinstance(pool, Sequence)
            or not pool
            or not all(isinstance(x, str) and x for x in pool)
        ):
            raise ConfigError(
                f"soundfonts={pool!r} must be a non-empty list of sound font names or paths "
                f"({', '.join(SOUNDFONTS)}) or null"
            )

    def render_dict(self) -> dict[str, Any]:
        """The settings that shape a rendition's audio, JSON-normalised (stored in meta.json
        and compared when deciding whether a rendered piece is still valid)."""
        d = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in self._NOT_RENDERING
        }
        d["voice_ranges"] = {v: list(self.voice_ranges[v]) for v in VOICES}
        d["soundfont"] = str(Path(soundfont_path(self.soundfont)).expanduser().resolve())
        for switch, keys in (("expressive", self._EXPRESSIVE), ("room", self._ROOM)):
            if not getattr(self, switch):
                for key in keys:
                    del d[key]
        if self.soundfonts is None:
            del d["soundfonts"]  # as before the pools existed: earlier renders stay valid
        else:
            d["soundfonts"] = [
                str(Path(soundfont_path(x)).expanduser().resolve()) for x in self.soundfonts
            ]
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
