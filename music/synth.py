"""Render note lists to audio with the FluidSynth command-line synthesizer.

One monophonic part is written to a Standard MIDI File with :mod:`pretty_midi` and rendered
offline with ``fluidsynth -ni -F out.wav -r SR -g GAIN sf2 in.mid`` (FluidSynth's fast-render
mode, float WAV output), then down-mixed to mono. The sound font is a General MIDI bank
(default ``/usr/share/sounds/sf2/FluidR3_GM.sf2`` from Debian's ``fluid-soundfont-gm``).
Program numbers are 0-based General MIDI programs (52 = Choir Aahs, 53 = Voice Oohs).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wb import subproc
from wb.errors import DependencyError, WbError

DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
#: General MIDI sound fonts from Debian packages, by short name: ``{name: (path, package)}``.
#: FluidR3, TimGM6mb and the Csound GM bank are independent sample sets (timbre diversity and
#: an unseen-sound-font test). MuseScore General is built on FluidR3 Mono (its sample-source
#: list credits FluidR3 for most melodic presets), so it is *not* unseen for a model trained
#: on FluidR3.
SOUNDFONTS = {
    "fluidr3": (DEFAULT_SOUNDFONT, "fluid-soundfont-gm"),
    "timgm6mb": ("/usr/share/sounds/sf2/TimGM6mb.sf2", "timgm6mb-soundfont"),
    "csound": ("/usr/share/sounds/sf2/sf_GMbank.sf2", "csound-soundfont"),
    "musescore": (
        "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",
        "musescore-general-soundfont-small",
    ),
}
MIDI_RESOLUTION = 960  # ticks per quarter note
RENDER_TIMEOUT = 600.0  # seconds one FluidSynth render may take (a chorale takes about 1.4 s)

# 0-based General MIDI program names used by the chorale timbre sets (for meta.json).
GM_NAMES = {
    40: "Violin", 41: "Viola", 42: "Cello", 43: "Contrabass", 48: "String Ensemble 1",
    49: "String Ensemble 2", 52: "Choir Aahs", 53: "Voice Oohs", 54: "Synth Voice",
    56: "Trumpet", 57: "Trombone", 58: "Tuba", 60: "French Horn", 61: "Brass Section",
    64: "Soprano Sax", 65: "Alto Sax", 66: "Tenor Sax", 67: "Baritone Sax",
    68: "Oboe", 69: "English Horn", 70: "Bassoon", 71: "Clarinet", 72: "Piccolo", 73: "Flute",
    74: "Recorder", 19: "Church Organ", 20: "Reed Organ",
}  # fmt: skip


def soundfont_path(name_or_path: str) -> str:
    """The file of a sound font given by short name (:data:`SOUNDFONTS`) or by path."""
    entry = SOUNDFONTS.get(str(name_or_path))
    return entry[0] if entry else str(name_or_path)


@dataclass(frozen=True)
class TimedNote:
    """A note to render.

    Attributes:
        pitch: MIDI note number (60 = middle C).
        start: onset in seconds from the start of the piece.
        end: offset in seconds (``end > start``).
        velocity: MIDI velocity 1..127.
    """

    pitch: int
    start: float
    end: float
    velocity: int


def find_fluidsynth(binary: str = "fluidsynth") -> str:
    """Locate the FluidSynth executable.

    Args:
        binary: program name looked up on ``PATH``, or a path to the executable.

    Returns:
        The absolute path of the executable.

    Raises:
        DependencyError: not found; the message names the Debian package ``fluidsynth``.
    """
    found = shutil.which(binary)
    if found is None:
        raise DependencyError(
            f"FluidSynth program {binary!r} not found on PATH; install it with "
            "`apt-get install fluidsynth` (Debian/Ubuntu package `fluidsynth`)"
        )
    return found


def check_soundfont(path: str | os.PathLike) -> Path:
    """Check that a General MIDI sound font (path or :data:`SOUNDFONTS` name) exists and is a
    non-empty file; returns its path.

    Raises:
        DependencyError: missing or empty; the message names the Debian package that provides
            it (``fluid-soundfont-gm`` for ``FluidR3_GM.sf2``).
    """
    p = Path(soundfont_path(str(path))).expanduser()
    if not p.is_file() or p.stat().st_size == 0:
        package = next((pkg for f, pkg in SOUNDFONTS.values() if Path(f) == p), None)
        hint = (
            f"install it with `apt-get install {package}` (Debian/Ubuntu package `{package}`)"
            if package
            else "install one (e.g. `apt-get install fluid-soundfont-gm`)"
        )
        raise DependencyError(f"sound font {p} not found; {hint} or set soundfont=...")
    return p


def write_midi(
    notes: Sequence[TimedNote],
    path: str | os.PathLike,
    program: int,
    bpm: float = 120.0,
    name: str = "",
    pitch_bends: Sequence[tuple[float, int]] = (),
    control_changes: Sequence[tuple[float, int, int]] = (),
    is_drum: bool = False,
) -> Path:
    """Write one part as a single-track Standard MIDI File.

    Args:
        notes: notes with times in seconds.
        path: destination ``.mid`` file.
        program: 0-based General MIDI program number (0..127).
        bpm: tempo written into the file (quarter notes per minute); note times in seconds
            are converted to ticks at this tempo (960 ticks per quarter note).
        name: instrument / track name.
        pitch_bends: ``(time_s, value)`` pitch-bend events, value in ``[-8192, 8191]``.
        control_changes: ``(time_s, controller, value)`` events (e.g. CC11 expression).
        is_drum: a percussion track (MIDI channel 10; ``pitch`` selects the drum sound).

    Returns:
        The written path.
    """
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(resolution=MIDI_RESOLUTION, initial_tempo=float(bpm))
    inst = pretty_midi.Instrument(program=int(program), is_drum=bool(is_drum), name=name)
    for n in notes:
        inst.notes.append(
            pretty_midi.Note(
                velocity=int(n.velocity), pitch=int(n.pitch), start=float(n.start), end=float(n.end)
            )
        )
    inst.pitch_bends.extend(pretty_midi.PitchBend(int(v), float(t)) for t, v in pitch_bends)
    inst.control_changes.extend(
        pretty_midi.ControlChange(int(c), int(v), float(t)) for t, c, v in control_changes
    )
    pm.instruments.append(inst)
    pm.write(str(path))
    return Path(path)


def render_midi(
    midi_path: str | os.PathLike,
    wav_path: str | os.PathLike,
    sample_rate: int,
    soundfont: str | os.PathLike = DEFAULT_SOUNDFONT,
    gain: float = 0.5,
    reverb: bool = True,
    binary: str = "fluidsynth",
) -> np.ndarray:
    """Render a MIDI file with the FluidSynth CLI and return mono audio.

    Runs ``fluidsynth -ni -q -F wav_path -r sample_rate -g gain -O float -T wav -R 0|1 -C 0
    sf2 midi_path`` (chorus off; reverb follows ``reverb``; samples are loaded on demand,
    which makes start-up about 3x faster with the 140 MB FluidR3 bank).

    Args:
        midi_path: input Standard MIDI File.
        wav_path: where FluidSynth writes its stereo float WAV (left in place).
        sample_rate: output rate in Hz.
        soundfont: General MIDI ``.sf2`` file.
        gain: FluidSynth master gain (0 < gain < 10; default 0.5).
        reverb: FluidSynth's built-in reverb on or off.
        binary: FluidSynth executable name or path.

    Returns:
        float32 array ``(samples,)``: the mean of the two output channels, in [-1, 1] scale.
        FluidSynth keeps rendering a few seconds past the last event, so the caller trims.

    Raises:
        DependencyError: FluidSynth or the sound font is missing.
        WbError: FluidSynth failed or wrote no readable audio.
    """
    import soundfile as sf

    exe = find_fluidsynth(binary)
    sf2 = check_soundfont(soundfont)
    cmd = [
        exe, "-ni", "-q", "-F", str(wav_path), "-r", str(int(sample_rate)), "-g", f"{gain:g}",
        "-O", "float", "-T", "wav", "-R", "1" if reverb else "0", "-C", "0",
        "-o", "synth.dynamic-sample-loading=1", str(sf2), str(midi_path),
    ]  # fmt: skip
    res = subproc.run(cmd, RENDER_TIMEOUT, "fluidsynth")
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()
        raise WbError(
            f"fluidsynth failed on {midi_path} (exit {res.returncode}): "
            f"{tail[-1][:160] if tail else 'no output'}"
        )
    try:
        data, sr = sf.read(str(wav_path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise WbError(f"fluidsynth wrote no readable audio for {midi_path} ({exc})") from None
    if sr != int(sample_rate):
        raise WbError(f"fluidsynth rendered {midi_path} at {sr} Hz instead of {sample_rate} Hz")
    if data.shape[1] == 1:
        return data[:, 0].copy()
    return ((data[:, 0] + data[:, 1]) * np.float32(0.5)).astype(np.float32)
