"""Note lists: reading and writing them (SSVD text, CSV, MIDI), f0 curves, monophonic clean-up.

A *note list* is a ``float64`` numpy array of shape ``(n, 3)`` whose columns are onset (s),
offset (s) and MIDI pitch (69 = A4 = 440 Hz; fractional values allowed, e.g. 67.85 for a sung
pitch between G4 and G#4), one row per note, sorted by onset. ``n`` may be 0.

The text format is the one of SSVD v2.0 (Wang et al., ICASSP 2022): one note per line,
``onset_s <TAB> offset_s <TAB> midi_pitch``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from wb.errors import WbError
from wb.runs import atomic_write, atomic_write_text

#: MIDI velocity used when none is given (mezzo-forte).
DEFAULT_VELOCITY = 80
#: Header line of :func:`write_csv`.
CSV_HEADER = ("onset_s", "offset_s", "midi_pitch", "velocity")


def empty_notes() -> np.ndarray:
    """An empty note list: ``float64`` array of shape ``(0, 3)``."""
    return np.zeros((0, 3), dtype=np.float64)


def as_notes(notes, name: str = "notes") -> np.ndarray:
    """Check and convert a note list; returns a new ``float64`` ``(n, 3)`` array sorted by onset.

    Args:
        notes: anything numpy turns into shape ``(n, 3)`` (onset s, offset s, MIDI pitch); an
            empty sequence gives ``(0, 3)``.
        name: what to call it in error messages.

    Returns:
        the notes, stably sorted by onset (then offset).

    Raises:
        WbError: wrong shape, non-finite values, negative times, an offset before its onset,
            or a pitch <= 0.
    """
    return _sorted_notes(notes, name)[0]


def _sorted_notes(notes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`as_notes` and the row order that sorted it (indices into the input rows)."""
    arr = np.array(notes, dtype=np.float64)
    if arr.size == 0:
        return empty_notes(), np.zeros(0, dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise WbError(f"{name}: expected a note array of shape (n, 3), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise WbError(f"{name}: notes contain NaN or Inf")
    if (arr[:, :2] < 0).any():
        raise WbError(f"{name}: negative note times")
    if (arr[:, 1] < arr[:, 0]).any():
        raise WbError(f"{name}: a note ends before it starts (offset < onset)")
    if (arr[:, 2] <= 0).any():
        raise WbError(f"{name}: MIDI pitches must be > 0")
    order = np.lexsort((arr[:, 1], arr[:, 0]))
    return arr[order], order


def read_notes(path: str | os.PathLike) -> np.ndarray:
    """Read an SSVD-style note file: 3 numbers per line (onset s, offset s, MIDI pitch).

    Columns may be separated by tabs or any whitespace; Windows line ends and blank lines are
    accepted. Notes of exactly zero length (offset == onset, an annotation artefact) are dropped
    without error.

    Returns:
        note list ``(n, 3)`` float64, sorted by onset (``(0, 3)`` for a file with no notes).

    Raises:
        WbError: missing or unreadable file; a line without exactly 3 numbers, with a
            non-finite or negative value, a pitch <= 0, or an offset before its onset (the
            message names the file and the line number).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise WbError(f"{p}: no such note file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WbError(f"{p}: cannot read note file ({exc.__class__.__name__})") from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) != 3:
                raise ValueError
            on, off, pitch = (float(x) for x in fields)
        except ValueError:
            shown = line.strip()[:60]
            raise WbError(
                f"{p}:{lineno}: expected 3 numbers 'onset offset midi_pitch', got {shown!r}"
            ) from None
        if not np.isfinite([on, off, pitch]).all() or on < 0 or pitch <= 0:
            raise WbError(f"{p}:{lineno}: non-finite or negative value in {line.strip()!r}")
        if off < on:
            raise WbError(f"{p}:{lineno}: offset {off} s is before onset {on} s")
        if off > on:
            rows.append((on, off, pitch))
    return as_notes(rows, str(p))


def write_notes_txt(path: str | os.PathLike, notes) -> Path:
    """Write notes atomically in the SSVD text format (tab-separated, 4 decimals, ``\\n``).

    :func:`read_notes` reads it back to within 5e-5 (rounding to 4 decimals).

    Raises:
        WbError: invalid notes (see :func:`as_notes`).
    """
    arr = as_notes(notes, str(path))
    text = "".join(f"{on:.4f}\t{off:.4f}\t{pitch:.4f}\n" for on, off, pitch in arr)
    return atomic_write_text(path, text)


def _velocity_array(velocities, n: int, name: str) -> np.ndarray:
    if velocities is None:
        return np.full(n, DEFAULT_VELOCITY, dtype=np.int64)
    try:
        vel = np.asarray(velocities, dtype=np.float64)
    except (TypeError, ValueError):
        raise WbError(f"{name}: velocities must be numbers") from None
    if vel.ndim == 0:
        vel = np.full(n, float(vel))
    if vel.shape != (n,):
        raise WbError(f"{name}: {vel.shape} velocities for {n} notes")
    if not np.isfinite(vel).all() or ((vel < 1) | (vel > 127)).any():
        raise WbError(f"{name}: MIDI velocities must lie in 1..127")
    return np.rint(vel).astype(np.int64)


def write_csv(path: str | os.PathLike, notes, velocities=None) -> Path:
    """Write notes atomically as CSV with header ``onset_s,offset_s,midi_pitch,velocity``.

    Times are written in seconds with 4 decimals, the pitch as an integer MIDI number (rounded
    half to even), the velocity as an integer.

    Args:
        path: destination file.
        notes: note list ``(n, 3)``.
        velocities: ``None`` (all :data:`DEFAULT_VELOCITY`), one number, or ``n`` numbers in
            1..127, one per row of ``notes`` (rows are written sorted by onset).

    Raises:
        WbError: invalid notes or velocities.
    """
    arr, order = _sorted_notes(notes, str(path))
    vel = _velocity_array(velocities, len(arr), str(path))[order]

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(CSV_HEADER)
            for (on, off, pitch), v in zip(arr, vel, strict=True):
                w.writerow([f"{on:.4f}", f"{off:.4f}", int(np.rint(pitch)), int(v)])

    return atomic_write(path, write)


def write_midi(
    path: str | os.PathLike,
    tracks,
    program: int = 0,
    velocities=None,
) -> Path:
    """Write notes atomically as a Standard MIDI File through :mod:`pretty_midi`.

    Times are kept in seconds (pretty_midi's default tempo map, 120 bpm, 220 ticks per beat,
    i.e. about 2.3 ms resolution); pitches are rounded to integer MIDI numbers; notes that
    round to zero length are kept as pretty_midi writes them.

    Args:
        path: destination ``.mid`` file.
        tracks: one note list ``(n, 3)`` (one instrument named ``"notes"``), or a mapping
            ``{track_name: note list}`` giving one named instrument per track in mapping order
            (e.g. ``{"soprano": s, "alto": a, "tenor": t, "bass": b}`` for 4-track SATB MIDI).
        program: General MIDI program number 0..127 for every track (0 = Acoustic Grand Piano,
            52 = Choir Aahs, 53 = Voice Oohs).
        velocities: ``None`` (all :data:`DEFAULT_VELOCITY`); for a single note list one number
            or ``n`` numbers (one per row); for a mapping, a mapping
            ``{track_name: velocities}`` (tracks not named get the default).

    Raises:
        WbError: invalid notes, velocities, program, or an empty track mapping.
    """
    import pretty_midi

    if not 0 <= int(program) <= 127:
        raise WbError(f"{path}: MIDI program {program} is outside 0..127")
    if isinstance(tracks, Mapping):
        if not tracks:
            raise WbError(f"{path}: no tracks to write")
        items = [(str(k), v) for k, v in tracks.items()]
        vel_map = velocities if isinstance(velocities, Mapping) else {}
        if velocities is not None and not isinstance(velocities, Mapping):
            raise WbError(f"{path}: velocities for several tracks must be a mapping by name")
    else:
        items = [("notes", tracks)]
        vel_map = {"notes": velocities}
    pm = pretty_midi.PrettyMIDI()
    for name, notes in items:
        arr, order = _sorted_notes(notes, f"{path} track {name!r}")
        vel = _velocity_array(vel_map.get(name), len(arr), f"{path} track {name!r}")[order]
        inst = pretty_midi.Instrument(program=int(program), name=name)
        for (on, off, pitch), v in zip(arr, vel, strict=True):
            p = int(np.rint(pitch))
            if not 0 <= p <= 127:
                raise WbError(f"{path} track {name!r}: MIDI pitch {pitch} is outside 0..127")
            inst.notes.append(pretty_midi.Note(int(v), p, float(on), float(off)))
        pm.instruments.append(inst)
    return atomic_write(path, lambda tmp: pm.write(tmp))


def midi_to_hz(midi) -> np.ndarray:
    """Frequency in Hz of MIDI pitch(es): ``440 * 2 ** ((m - 69) / 12)`` (fractional allowed)."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def notes_to_f0(notes, times) -> np.ndarray:
    """Sample a note list as an f0 curve.

    A note sounds at time ``t`` when ``onset <= t < offset``. Where notes overlap, the one
    with the later onset wins (for equal onsets, the later row after sorting).

    Args:
        notes: note list ``(n, 3)`` (onset s, offset s, MIDI pitch).
        times: 1-D array of times in seconds (any order).

    Returns:
        ``float64`` array shaped like ``times``: the sounding note's frequency in Hz
        (:func:`midi_to_hz` of its possibly fractional pitch), 0 where no note sounds.

    Raises:
        WbError: invalid notes.
    """
    arr = as_notes(notes)
    t = np.asarray(times, dtype=np.float64)
    f0 = np.zeros(t.shape, dtype=np.float64)
    for (on, off, _), hz in zip(arr, midi_to_hz(arr[:, 2]), strict=True):
        f0[(t >= on) & (t < off)] = hz
    return f0


def clean_notes(notes, min_duration: float = 0.03) -> np.ndarray:
    """Make a note list monophonic and drop very short notes.

    Steps: sort by onset; drop notes shorter than ``min_duration`` seconds; cut each note's
    offset at the next note's onset (so no two notes overlap: the later note wins, as in
    :func:`notes_to_f0`); drop the notes this cut left shorter than ``min_duration`` (e.g. the
    first of two notes with the same onset). Pitches are unchanged.

    Args:
        notes: note list ``(n, 3)``.
        min_duration: shortest note kept, in seconds (``offset - onset >= min_duration``).

    Returns:
        a new monophonic note list ``(m, 3)``, m <= n, sorted by onset.

    Raises:
        WbError: invalid notes.
    """
    arr = as_notes(notes)
    shortest = min_duration - 1e-9  # 0.13 - 0.10 < 0.03 in floating point
    arr = arr[arr[:, 1] - arr[:, 0] >= shortest]
    if len(arr) > 1:
        arr[:-1, 1] = np.minimum(arr[:-1, 1], arr[1:, 0])
        arr = arr[arr[:, 1] - arr[:, 0] >= shortest]
    return arr
