"""Expressive performance and room acoustics for rendered chorales.

Two independent layers, each switched on by a :class:`~music.chorales.config.ChoraleConfig`
flag and each drawing from its own seeded streams (so the other random choices of a rendition
do not change when one is switched on):

* **Expression** (``expressive``), written into each part's MIDI file and played by
  FluidSynth: a constant per-part detuning and a vibrato (a pitch-bend LFO whose depth fades
  in after each onset), a slowly varying dynamics curve on CC11 (expression), and legato
  overlaps between successive notes of different pitch. Pitch bends assume the General MIDI
  default bend range of +-2 semitones (8192 steps = 200 cents), which FluidSynth uses.
* **Room** (``room``), applied to the rendered stems: each part is convolved with its own
  impulse response of one shared room (same RT60, different early reflections and
  direct-to-reverberant ratio: players stand in different places), then every stem goes
  through the same random microphone equalisation, and each stem gets its own low noise
  floor (as separately recorded tracks have). All three are linear per stem, so the mixture,
  written afterwards as the sum of the stems, stays their exact sum.

The impulse response is Polack's statistical model of late reverberation: Gaussian noise
with an exponential decay of -60 dB over RT60 seconds, in three frequency bands whose RT60s
differ (high frequencies die out first), after a direct path and a few sparse early
reflections (Polack 1993, "Playing billiards in the concert hall"; Kuttruff, "Room
Acoustics", 6th ed., ch. 5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from music.synth import TimedNote

PITCH_BEND_RANGE_CENTS = 200.0  # General MIDI default: +-2 semitones over +-8192 steps
BEND_STEP = 0.01  # seconds between pitch-bend events (100 Hz: smooth for 4-7 Hz vibrato)
CC_STEP = 0.05  # seconds between expression (CC11) events
VIBRATO_RATE = (4.5, 6.5)  # Hz (sung and bowed vibrato, Prame 1994; Seashore 1938)
VIBRATO_DELAY = (0.15, 0.45)  # seconds for the vibrato depth to fade in after an onset
# (low edge Hz, high edge Hz, RT60 factor): bands of the late reverberation
REVERB_BANDS = ((0.0, 500.0, 1.3), (500.0, 4000.0, 1.0), (4000.0, None, 0.55))
EARLY_REFLECTIONS = 6
MAX_IR_SECONDS = 3.0


@dataclass(frozen=True)
class PartExpression:
    """The expressive choices for one part.

    Attributes:
        detune_cents: constant pitch offset in cents.
        vibrato_cents: vibrato depth (peak deviation) in cents; 0 is none.
        vibrato_rate: vibrato rate in Hz.
        vibrato_delay: seconds for the depth to reach full after each onset.
        phase: vibrato phase at time 0 in radians.
        dynamics: ``(period_s, amplitude, phase)`` of the three sinusoids whose sum, scaled to
            ``[expression_floor, 127]``, is the CC11 curve.
    """

    detune_cents: float
    vibrato_cents: float
    vibrato_rate: float
    vibrato_delay: float
    phase: float
    dynamics: tuple[tuple[float, float, float], ...]


def draw_expression(
    rng: np.random.Generator, vibrato_cents: float, detune_cents: float
) -> PartExpression:
    """Draw one part's :class:`PartExpression`.

    Args:
        rng: the part's own generator.
        vibrato_cents: largest vibrato depth in cents (each part draws ``U(0, max)``).
        detune_cents: largest detuning in cents (each part draws ``U(-max, max)``).
    """
    return PartExpression(
        detune_cents=round(float(rng.uniform(-detune_cents, detune_cents)), 3),
        vibrato_cents=round(float(rng.uniform(0.0, vibrato_cents)), 3),
        vibrato_rate=round(float(rng.uniform(*VIBRATO_RATE)), 3),
        vibrato_delay=round(float(rng.uniform(*VIBRATO_DELAY)), 3),
        phase=round(float(rng.uniform(0.0, 2 * np.pi)), 4),
        dynamics=tuple(
            (
                round(float(rng.uniform(3.0, 20.0)), 3),
                round(float(rng.uniform(0.3, 1.0)), 3),
                round(float(rng.uniform(0.0, 2 * np.pi)), 4),
            )
            for _ in range(3)
        ),
    )


def legato(
    notes: list[list[float]], max_overlap: float, rng: np.random.Generator
) -> list[list[float]]:
    """Make a monophonic line legato.

    Notes are ``[pitch, start_s, end_s, velocity]``, sorted by start. A note followed within
    0.1 s by a note of another pitch is held ``U(0, max_overlap)`` seconds into it (as a
    singer or bowed string slurs), never past that note's end (so it never reaches a later
    note, whose pitch may be its own); before a repeated pitch the note ends when the next
    starts (a MIDI note-off would otherwise cut the new note).

    Returns:
        The notes (modified in place).
    """
    for a, b in zip(notes, notes[1:], strict=False):
        if b[0] != a[0] and b[1] - a[2] < 0.1 and max_overlap > 0:
            a[2] = max(a[2], min(b[1] + float(rng.uniform(0.0, max_overlap)), b[2]))
        else:
            a[2] = min(a[2], b[1])
    return notes


def pitch_bend_curve(
    notes: Sequence[TimedNote], expr: PartExpression, duration: float
) -> list[tuple[float, int]]:
    """Pitch-bend events ``(time_s, value)`` for detuning plus vibrato over ``[0, duration)``.

    The vibrato depth restarts from zero at every onset and reaches ``vibrato_cents`` after
    ``vibrato_delay`` seconds. Values are MIDI pitch-bend steps in ``[-8192, 8191]`` for a
    +-200 cent range; only changes are emitted.
    """
    t = np.arange(0.0, max(duration, BEND_STEP), BEND_STEP)
    onsets = np.array(sorted(n.start for n in notes)) if notes else np.zeros(1)
    idx = np.searchsorted(onsets, t, side="right") - 1
    since = t - onsets[np.clip(idx, 0, None)]
    since[idx < 0] = 0.0
    ramp = np.clip(since / max(expr.vibrato_delay, 1e-3), 0.0, 1.0)
    cents = expr.detune_cents + expr.vibrato_cents * ramp * np.sin(
        2 * np.pi * expr.vibrato_rate * t + expr.phase
    )
    values = np.clip(np.round(cents / PITCH_BEND_RANGE_CENTS * 8192), -8192, 8191).astype(int)
    keep = np.ones(len(values), dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    return [(round(float(a), 4), int(b)) for a, b in zip(t[keep], values[keep], strict=True)]


def expression_curve(expr: PartExpression, duration: float, floor: int) -> list[tuple[float, int]]:
    """CC11 (expression) events ``(time_s, value)``: a smooth curve in ``[floor, 127]``.

    The curve is the normalised sum of three slow sinusoids (periods of 3-20 s: phrase-scale
    crescendi and diminuendi). ``floor >= 127`` gives a constant 127. Only changes are
    emitted.
    """
    t = np.arange(0.0, max(duration, CC_STEP), CC_STEP)
    total = sum(a * np.sin(2 * np.pi * t / p + ph) for p, a, ph in expr.dynamics)
    norm = sum(a for _, a, _ in expr.dynamics) or 1.0
    unit = 0.5 * (1.0 + total / norm)  # in [0, 1]
    values = np.round(floor + (127 - floor) * unit).astype(int).clip(min(floor, 127), 127)
    keep = np.ones(len(values), dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    return [(round(float(a), 4), int(b)) for a, b in zip(t[keep], values[keep], strict=True)]


@dataclass(frozen=True)
class RoomPlan:
    """One rendition's room, microphone and noise floor.

    Attributes:
        rt60: mid-band reverberation time in seconds (-60 dB decay).
        wet_db: ``{voice: reverberant-to-direct energy ratio in dB}``.
        eq_hz: frequencies (Hz) of the microphone equalisation's control points.
        eq_db: gains (dB) at ``eq_hz`` (linear-phase FIR through these points).
        noise_db: each stem's noise floor in dB relative to the mixture's RMS.
        seed: seed of the impulse responses' and noise floors' random signals.
    """

    rt60: float
    wet_db: Mapping[str, float]
    eq_hz: tuple[float, ...]
    eq_db: tuple[float, ...]
    noise_db: float
    seed: int


def draw_room(
    rng: np.random.Generator,
    voices: Sequence[str],
    rt60: Sequence[float],
    wet_db: Sequence[float],
    eq_db: float,
    noise_db: Sequence[float],
    sample_rate: int,
) -> RoomPlan:
    """Draw a :class:`RoomPlan`.

    Args:
        rng: the rendition's room generator.
        voices: part names.
        rt60: ``[min, max]`` seconds.
        wet_db: ``[min, max]`` reverberant-to-direct ratio (dB), drawn per part.
        eq_db: largest boost or cut (dB) at each of six log-spaced points between 100 Hz and
            0.8 x Nyquist; below 40 Hz the microphone rolls off (-12 dB), and the top end
            falls by a further 0-6 dB.
        noise_db: ``[min, max]`` noise floor relative to the mixture RMS (dB).
        sample_rate: Hz (places the control points).
    """
    nyq = sample_rate / 2.0
    mids = np.geomspace(100.0, 0.8 * nyq, 6)
    gains = rng.uniform(-eq_db, eq_db, size=6)
    hz = (40.0, *[float(f) for f in mids], nyq)
    db = (-12.0, *[float(g) for g in gains], float(gains[-1] - rng.uniform(0.0, 6.0)))
    return RoomPlan(
        rt60=round(float(rng.uniform(*rt60)), 3),
        wet_db={v: round(float(rng.uniform(*wet_db)), 3) for v in voices},
        eq_hz=tuple(round(f, 2) for f in hz),
        eq_db=tuple(round(g, 3) for g in db),
        noise_db=round(float(rng.uniform(*noise_db)), 3),
        seed=int(rng.integers(0, 2**63 - 1)),
    )


def impulse_response(
    sample_rate: int, rt60: float, wet_db: float, rng: np.random.Generator
) -> np.ndarray:
    """A synthetic room impulse response (Polack's model, see the module docstring).

    Args:
        sample_rate: Hz.
        rt60: mid-band reverberation time in seconds (> 0); the low band decays 1.3x slower,
            the band above 4 kHz 0.55x as long.
        wet_db: energy of everything after the direct path relative to the direct path (dB).
        rng: source of the noise and the reflections.

    Returns:
        float64 ``(samples,)`` with ``h[0] = 1`` (the direct path), at most
        ``min(1.2 * rt60 * 1.3, 3 s)`` long.
    """
    from scipy.signal import butter, sosfilt

    n = int(sample_rate * min(MAX_IR_SECONDS, 1.2 * 1.3 * rt60)) + 1
    t = np.arange(n) / sample_rate
    noise = rng.standard_normal(n)
    nyq = sample_rate / 2.0
    late = np.zeros(n)
    for lo, hi, factor in REVERB_BANDS:
        if lo >= 0.95 * nyq:
            continue
        if lo <= 0:
            sos = butter(4, hi, "lowpass", fs=sample_rate, output="sos")
        elif hi is None or hi >= 0.95 * nyq:
            sos = butter(4, lo, "highpass", fs=sample_rate, output="sos")
        else:
            sos = butter(4, (lo, hi), "bandpass", fs=sample_rate, output="sos")
        late += sosfilt(sos, noise) * np.exp(-6.9078 * t / (rt60 * factor))
    predelay = float(rng.uniform(0.005, 0.03))
    late[t < predelay] = 0.0
    early = np.zeros(n)
    for _ in range(EARLY_REFLECTIONS):
        k = int(rng.uniform(0.002, min(0.05, n / sample_rate)) * sample_rate)
        early[min(k, n - 1)] += rng.uniform(0.2, 0.6) * rng.choice((-1.0, 1.0))
    # early reflections carry a quarter of the reverberant energy, the late tail the rest
    late_e, early_e = float(np.sum(late**2)), float(np.sum(early**2))
    tail = late * np.sqrt(early_e * 3.0 / late_e) + early if late_e > 0 else early
    tail *= np.sqrt(10.0 ** (wet_db / 10.0) / max(float(np.sum(tail**2)), 1e-12))
    tail[0] = 1.0
    return tail


def microphone_fir(eq_hz: Sequence[float], eq_db: Sequence[float], sample_rate: int) -> np.ndarray:
    """Linear-phase FIR of the microphone equalisation (:func:`scipy.signal.firwin2`).

    The response follows ``eq_db`` at ``eq_hz`` (linear interpolation between them, zero at
    0 Hz) with about 20 ms of taps, a frequency resolution of about 50 Hz: above about 150 Hz
    it is within 1 dB of the points, below that it is smoother than asked (at 16 kHz the
    -12 dB point at 40 Hz comes out near -8 dB). Returns float64 ``(taps,)``, an odd length.
    """
    from scipy.signal import firwin2

    taps = int(0.02 * sample_rate) | 1
    nyq = sample_rate / 2.0
    freq = [0.0, *[min(f, nyq) / nyq for f in eq_hz]]
    gain = [0.0, *[10.0 ** (g / 20.0) for g in eq_db]]
    if freq[-1] < 1.0:
        freq.append(1.0)
        gain.append(gain[-1])
    return firwin2(taps, freq, gain)


def apply_room(stems: np.ndarray, sample_rate: int, room: RoomPlan, voices: Sequence[str]):
    """Put dry stems into a room: reverberation per part, shared microphone EQ, noise floors.

    Args:
        stems: float64 ``(voices, samples)`` dry stems.
        sample_rate: Hz.
        room: the rendition's :class:`RoomPlan`.
        voices: part names, in the order of ``stems``' rows.

    Returns:
        float64 ``(voices, samples)``: same length (reverberation past the end is cut; the
        FIR's delay is compensated). Summing the rows gives the mixture.
    """
    from scipy.signal import lfilter, oaconvolve

    rng = np.random.default_rng(room.seed)
    n = stems.shape[1]
    fir = microphone_fir(room.eq_hz, room.eq_db, sample_rate)
    delay = (len(fir) - 1) // 2
    out = np.empty_like(stems, dtype=np.float64)
    for i, v in enumerate(voices):
        h = impulse_response(sample_rate, room.rt60, room.wet_db[v], rng)
        wet = oaconvolve(stems[i], h)[:n]
        out[i] = oaconvolve(wet, fir)[delay : delay + n]
    rms = float(np.sqrt(np.mean(out.sum(axis=0) ** 2)))
    if rms > 0:
        level = rms * 10.0 ** (room.noise_db / 20.0)
        for i in range(len(voices)):
            # a gently falling (-3 dB/octave-like) floor: one-pole low-pass of white noise
            noise = lfilter([1.0], [1.0, -0.7], rng.standard_normal(n))
            out[i] += noise * (level / max(float(np.std(noise)), 1e-12))
    return out
