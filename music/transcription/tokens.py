"""MT3-style event vocabulary for monophonic and polyphonic note transcription.

A fixed audio window (``window`` seconds) is described by one token sequence (Gardner et al.
2022, "MT3: Multi-Task Multitrack Music Transcription", section 3.2; Hawthorne et al. 2021,
"Sequence-to-Sequence Piano Transcription with Transformers")::

    [on p]... TIE_END  (time t  [off p | on p]...)...  EOS

* the **tie section** (before ``TIE_END``) lists, as note-on tokens, the notes already
  sounding when the window starts; it lets windows be decoded independently (in one batch)
  and stitched afterwards: a note open at the end of window k continues into window k+1
  only if window k+1 lists it as tied;
* ``time t`` is the *absolute* time inside the window, quantized to ``step`` seconds
  (``0 .. round(window / step)``), as in MT3 (a shift from the window start, never
  accumulated, so one wrong token does not move every later event);
* events at one time share one time token; offs come before ons;
* ``off p`` ends pitch ``p``; a note still sounding at the window end has no off in that
  window.

Vocabulary layout: ``PAD=0, BOS=1, EOS=2, TIE_END=3``, then the time tokens, then one note-on
per pitch, then one note-off per pitch (:class:`Vocabulary`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

PAD, BOS, EOS, TIE_END = 0, 1, 2, 3
N_SPECIAL = 4


@dataclass(frozen=True)
class Vocabulary:
    """Token ids of the event vocabulary.

    Attributes:
        window: window length in seconds.
        step: time resolution in seconds (10 ms as MT3).
        min_pitch, max_pitch: MIDI pitch range (inclusive) that has note tokens.
    """

    window: float = 4.0
    step: float = 0.01
    min_pitch: int = 36
    max_pitch: int = 96

    @property
    def n_times(self) -> int:
        """Time tokens: ``0 .. round(window / step)`` inclusive."""
        return int(round(self.window / self.step)) + 1

    @property
    def n_pitches(self) -> int:
        """Pitches with note tokens."""
        return self.max_pitch - self.min_pitch + 1

    @property
    def time0(self) -> int:
        """Id of ``time 0``."""
        return N_SPECIAL

    @property
    def on0(self) -> int:
        """Id of ``on min_pitch``."""
        return self.time0 + self.n_times

    @property
    def off0(self) -> int:
        """Id of ``off min_pitch``."""
        return self.on0 + self.n_pitches

    @property
    def size(self) -> int:
        """Number of token ids."""
        return self.off0 + self.n_pitches

    def time(self, seconds: float) -> int:
        """Token of a time inside the window (clamped to the window)."""
        q = int(round(seconds / self.step))
        return self.time0 + min(max(q, 0), self.n_times - 1)

    def _pitch(self, pitch: int) -> int:
        if not self.min_pitch <= int(pitch) <= self.max_pitch:
            raise ValueError(f"pitch {pitch} outside {self.min_pitch}..{self.max_pitch}")
        return int(pitch) - self.min_pitch

    def on(self, pitch: int) -> int:
        """Token of a note-on.

        Raises:
            ValueError: a pitch outside ``min_pitch..max_pitch``.
        """
        return self.on0 + self._pitch(pitch)

    def off(self, pitch: int) -> int:
        """Token of a note-off.

        Raises:
            ValueError: a pitch outside ``min_pitch..max_pitch``.
        """
        return self.off0 + self._pitch(pitch)

    def describe(self, token: int) -> str:
        """Human-readable name of a token (``"time 1.23"``, ``"on 60"``, ``"EOS"`` ...)."""
        t = int(token)
        names = {PAD: "PAD", BOS: "BOS", EOS: "EOS", TIE_END: "TIE_END"}
        if t in names:
            return names[t]
        if self.time0 <= t < self.on0:
            return f"time {(t - self.time0) * self.step:.2f}"
        if self.on0 <= t < self.off0:
            return f"on {t - self.on0 + self.min_pitch}"
        if self.off0 <= t < self.size:
            return f"off {t - self.off0 + self.min_pitch}"
        raise ValueError(f"token {t} is outside the vocabulary of {self.size}")


def encode(notes: np.ndarray, start: float, vocab: Vocabulary) -> list[int]:
    """Token sequence (ending with ``EOS``) of the notes seen in ``[start, start + window)``.

    Args:
        notes: ``(n, 3)`` onset_s, offset_s, MIDI pitch (rounded to the nearest integer;
            notes outside the vocabulary's pitch range, and notes whose onset and offset fall
            on the same time token, are left out).
        start: window start in seconds of the recording.
        vocab: the vocabulary.

    Returns:
        Token ids: tie section, ``TIE_END``, events, ``EOS`` (no ``BOS``).
    """
    end = start + vocab.window
    ties: list[int] = []
    events: list[tuple[int, int, int]] = []  # (time token, 0 off / 1 on, pitch)
    for onset, offset, pitch in np.asarray(notes, dtype=np.float64).reshape(-1, 3):
        p = int(round(pitch))
        if not vocab.min_pitch <= p <= vocab.max_pitch or offset <= start or onset >= end:
            continue
        if vocab.time(onset - start) == vocab.time(offset - start) and onset >= start:
            continue  # shorter than one time step: it would read as off-then-on
        if onset < start:
            ties.append(p)
        else:
            events.append((vocab.time(onset - start), 1, p))
        if offset < end:
            events.append((vocab.time(offset - start), 0, p))
    tokens = [vocab.on(p) for p in sorted(ties)] + [TIE_END]
    current = -1
    for t, kind, p in sorted(events):
        if t != current:
            tokens.append(t)
            current = t
        tokens.append(vocab.on(p) if kind else vocab.off(p))
    tokens.append(EOS)
    return tokens


@dataclass
class WindowEvents:
    """The parsed content of one window's tokens.

    Attributes:
        ties: pitches the window says are sounding at its start.
        events: ``(time_s, is_on, pitch)`` in order; times relative to the window start.
    """

    ties: set[int]
    events: list[tuple[float, bool, int]]


def parse(tokens: Iterable[int], vocab: Vocabulary) -> WindowEvents:
    """Parse a (possibly malformed, model-generated) token sequence.

    Lenient by design, since decoded sequences may break the grammar: a leading ``BOS`` is
    skipped; parsing stops at ``EOS`` or ``PAD``; a missing ``TIE_END`` means no events (the
    note-ons read are ties); note tokens before the first time token sit at time 0; a time
    token earlier than the current time is clamped to it (events stay in order); tokens that
    do not belong where they stand (a second ``TIE_END``, an off in the tie section, ...) are
    ignored.

    Args:
        tokens: token ids.
        vocab: the vocabulary they were produced with.
    """
    ties: set[int] = set()
    events: list[tuple[float, bool, int]] = []
    in_ties, now = True, 0.0
    for i, tok in enumerate(int(t) for t in tokens):
        if tok == BOS and i == 0:
            continue
        if tok in (EOS, PAD):
            break
        if tok == TIE_END:
            in_ties = False
        elif vocab.time0 <= tok < vocab.on0:
            if not in_ties:
                now = max(now, (tok - vocab.time0) * vocab.step)
        elif vocab.on0 <= tok < vocab.off0:
            p = tok - vocab.on0 + vocab.min_pitch
            (ties.add(p) if in_ties else events.append((now, True, p)))
        elif vocab.off0 <= tok < vocab.size and not in_ties:
            events.append((now, False, tok - vocab.off0 + vocab.min_pitch))
    return WindowEvents(ties, events)


class NoteStitcher:
    """Turn the parsed windows of one recording, in order, into one note list.

    A note open at the end of a window continues if the next window lists it among its ties,
    else it ends at the window boundary; a tie the previous window did not have open starts a
    note at the boundary (its onset was missed). ``monophonic=True`` ends any sounding note
    when another starts (a single voice).

    Args:
        monophonic: keep at most one sounding note.
        min_duration: notes shorter than this (seconds) are dropped.
    """

    def __init__(self, monophonic: bool = True, min_duration: float = 0.02) -> None:
        self.monophonic = monophonic
        self.min_duration = float(min_duration)
        self.active: dict[int, float] = {}
        self.notes: list[tuple[float, float, int]] = []

    def _close(self, pitch: int, at: float) -> None:
        onset = self.active.pop(pitch)
        if at - onset >= self.min_duration:
            self.notes.append((onset, at, pitch))

    def _open(self, pitch: int, at: float) -> None:
        if pitch in self.active:
            self._close(pitch, at)
        if self.monophonic:
            for other in list(self.active):
                self._close(other, at)
        self.active[pitch] = at

    def add(self, window: WindowEvents, start: float) -> None:
        """Add the next window (starting at ``start`` seconds of the recording)."""
        for p in [p for p in self.active if p not in window.ties]:
            self._close(p, start)
        for p in sorted(window.ties):
            if p not in self.active:
                self._open(p, start)
        for t, is_on, p in sorted(window.events, key=lambda e: (e[0], e[1])):  # offs first
            if is_on:
                self._open(p, start + t)
            elif p in self.active:
                self._close(p, start + t)

    def finish(self, end: float) -> np.ndarray:
        """Close every sounding note at ``end`` seconds; ``(n, 3)`` notes sorted by onset."""
        for p in list(self.active):
            self._close(p, max(end, self.active[p]))
        out = np.array(sorted(self.notes), dtype=np.float64).reshape(-1, 3)
        return out


def decode_windows(
    windows: Sequence[Sequence[int]],
    starts: Sequence[float],
    vocab: Vocabulary,
    end: float,
    monophonic: bool = True,
) -> np.ndarray:
    """Notes ``(n, 3)`` (onset_s, offset_s, MIDI pitch) from consecutive windows' tokens.

    Args:
        windows: one token sequence per window, in time order.
        starts: each window's start in seconds.
        vocab: the vocabulary.
        end: the recording's duration in seconds (open notes end there).
        monophonic: see :class:`NoteStitcher`.
    """
    stitcher = NoteStitcher(monophonic=monophonic)
    for tokens, start in zip(windows, starts, strict=True):
        stitcher.add(parse(tokens, vocab), float(start))
    return stitcher.finish(end)
