"""Note-level and frame-level transcription scores with mir_eval.

Note level (Raffel et al., "mir_eval", ISMIR 2014; the measures of Molina et al., "Evaluation
framework for automatic singing transcription", ISMIR 2014): an estimated note matches a
reference note when its onset is within 50 ms and its pitch within 50 cents (*COnP*), and, for
*COnPOff*, its offset is also within max(20 % of the reference note's duration, 50 ms); *COn*
compares onsets only. Each gives precision, recall and F1 (``mir_eval.transcription``).

Frame level: both note lists are sampled as f0 curves on a common 10 ms grid and scored with
``mir_eval.melody`` raw pitch accuracy (RPA: share of the reference's voiced frames whose
estimate is within 50 cents) and raw chroma accuracy (RCA: the same, octave errors forgiven).

Notes are note lists ``(n, 3)`` (onset s, offset s, MIDI pitch), see :mod:`.notes`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from music.transcription.notes import as_notes, midi_to_hz, notes_to_f0
from wb.errors import WbError

#: Onset tolerance (s), pitch tolerance (cents), offset ratio and minimum offset tolerance (s).
ONSET_TOLERANCE, PITCH_TOLERANCE, OFFSET_RATIO, OFFSET_MIN_TOLERANCE = 0.05, 50.0, 0.2, 0.05
#: Keys of :func:`note_scores`.
NOTE_KEYS = (
    "conpoff_p", "conpoff_r", "conpoff_f",
    "conp_p", "conp_r", "conp_f",
    "con_p", "con_r", "con_f",
)  # fmt: skip
#: Keys of :func:`melody_scores`.
MELODY_KEYS = ("raw_pitch_accuracy", "raw_chroma_accuracy")
#: Default columns of :func:`format_table` and their headings.
TABLE_COLUMNS = {
    "conpoff_f": "COnPOff F1",
    "conp_f": "COnP F1",
    "con_f": "COn F1",
    "raw_pitch_accuracy": "RPA",
    "raw_chroma_accuracy": "RCA",
}


def _intervals_hz(notes, round_pitch: bool, name: str) -> tuple[np.ndarray, np.ndarray]:
    arr = as_notes(notes, name)
    arr = arr[arr[:, 1] > arr[:, 0]]  # mir_eval refuses zero-length notes
    pitch = np.rint(arr[:, 2]) if round_pitch else arr[:, 2]
    return np.ascontiguousarray(arr[:, :2]), midi_to_hz(pitch)


def note_scores(ref, est, round_reference: bool = True) -> dict[str, float]:
    """Note-level precision, recall and F1 of ``est`` against ``ref`` (COnPOff, COnP, COn).

    Uses ``mir_eval.transcription.precision_recall_f1_overlap`` with onset tolerance 50 ms,
    pitch tolerance 50 cents, offset ratio 0.2 and minimum offset tolerance 50 ms (COnPOff),
    the same with ``offset_ratio=None`` (COnP), and
    ``mir_eval.transcription.onset_precision_recall_f1`` with 50 ms (COn). MIDI pitches are
    converted to Hz with :func:`~music.transcription.notes.midi_to_hz`. Notes of zero length
    are ignored (mir_eval refuses them). When either list is empty every score is 0 (mir_eval's
    definition; its "empty" warnings are silenced).

    Args:
        ref: reference note list ``(n, 3)`` (onset s, offset s, MIDI pitch).
        est: estimated note list ``(m, 3)``; pitches used as given.
        round_reference: round reference pitches to the nearest integer first (SSVD gives the
            sung, fractional pitch; note-level scores compare against the intended note).

    Returns:
        dict with float keys :data:`NOTE_KEYS` (``conpoff_p``, ``conpoff_r``, ``conpoff_f``,
        ``conp_*``, ``con_*``), each in [0, 1].

    Raises:
        WbError: invalid note lists (see :func:`~music.transcription.notes.as_notes`).
    """
    import mir_eval

    ref_iv, ref_hz = _intervals_hz(ref, round_reference, "reference notes")
    est_iv, est_hz = _intervals_hz(est, False, "estimated notes")
    tr = mir_eval.transcription
    common = {"onset_tolerance": ONSET_TOLERANCE, "pitch_tolerance": PITCH_TOLERANCE}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        p1, r1, f1, _ = tr.precision_recall_f1_overlap(
            ref_iv, ref_hz, est_iv, est_hz, offset_ratio=OFFSET_RATIO,
            offset_min_tolerance=OFFSET_MIN_TOLERANCE, **common,
        )  # fmt: skip
        p2, r2, f2, _ = tr.precision_recall_f1_overlap(
            ref_iv, ref_hz, est_iv, est_hz, offset_ratio=None, **common
        )
        p3, r3, f3 = tr.onset_precision_recall_f1(ref_iv, est_iv, onset_tolerance=ONSET_TOLERANCE)
    values = (p1, r1, f1, p2, r2, f2, p3, r3, f3)
    return {k: float(v) for k, v in zip(NOTE_KEYS, values, strict=True)}


def melody_scores(ref, est, hop: float = 0.01) -> dict[str, float]:
    """Frame-level raw pitch and raw chroma accuracy of ``est`` against ``ref``.

    Both note lists are sampled with :func:`~music.transcription.notes.notes_to_f0` at times
    ``0, hop, 2 hop, ...`` up to the later of the two lists' last offsets, then scored with
    ``mir_eval.melody.to_cent_voicing`` and ``raw_pitch_accuracy`` / ``raw_chroma_accuracy``
    (50 cents). Reference pitches are *not* rounded: the fractional pitch is what was sung.
    A reference without notes scores 0.

    Args:
        ref: reference note list ``(n, 3)``.
        est: estimated note list ``(m, 3)``.
        hop: grid step in seconds.

    Returns:
        dict with float keys :data:`MELODY_KEYS` (``raw_pitch_accuracy``,
        ``raw_chroma_accuracy``), each in [0, 1].

    Raises:
        WbError: invalid note lists or ``hop <= 0``.
    """
    import mir_eval

    if not hop > 0:
        raise WbError(f"melody scores: hop must be > 0 s, got {hop}")
    ref_n, est_n = as_notes(ref, "reference notes"), as_notes(est, "estimated notes")
    end = max([0.0, *ref_n[:, 1], *est_n[:, 1]])
    times = np.arange(int(np.floor(end / hop)) + 2) * hop
    ref_f0, est_f0 = notes_to_f0(ref_n, times), notes_to_f0(est_n, times)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref_v, ref_c, est_v, est_c = mir_eval.melody.to_cent_voicing(times, ref_f0, times, est_f0)
        rpa = mir_eval.melody.raw_pitch_accuracy(ref_v, ref_c, est_v, est_c)
        rca = mir_eval.melody.raw_chroma_accuracy(ref_v, ref_c, est_v, est_c)
    return {"raw_pitch_accuracy": float(rpa), "raw_chroma_accuracy": float(rca)}


def score(ref, est, round_reference: bool = True, hop: float = 0.01) -> dict[str, float]:
    """:func:`note_scores` and :func:`melody_scores` merged into one dict (11 keys).

    Raises:
        WbError: invalid note lists or ``hop``.
    """
    return {**note_scores(ref, est, round_reference), **melody_scores(ref, est, hop)}


def aggregate(per_file: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean over files of each score: every file counts once, whatever its number of notes.

    This is how the issue's basic-pitch figures on SSVD were computed (mean of per-file
    mir_eval scores), not a pooled count over all notes.

    Args:
        per_file: one dict per file (e.g. from :func:`score`); keys missing from some files
            are averaged over the files that have them.

    Returns:
        dict of the means, plus ``"files"``: the number of files (as a float).

    Raises:
        WbError: ``per_file`` is empty.
    """
    if not per_file:
        raise WbError("aggregate: no per-file scores to average")
    keys = list(dict.fromkeys(k for d in per_file for k in d))
    out = {k: float(np.mean([d[k] for d in per_file if k in d])) for k in keys}
    out["files"] = float(len(per_file))
    return out


def format_table(
    rows: dict[str, dict[str, float]], keys: Sequence[str] = tuple(TABLE_COLUMNS)
) -> str:
    """Plain-text table: one row per system, one column per score, 3 decimals.

    Args:
        rows: ``{system name: scores}`` (e.g. from :func:`aggregate`), in display order.
        keys: score keys to show; headings from :data:`TABLE_COLUMNS` (COnPOff F1, COnP F1,
            COn F1, RPA, RCA) or the key itself. A missing score shows as ``-``.

    Returns:
        the table as lines joined by ``\\n`` (no trailing newline).
    """
    heads = ["system", *(TABLE_COLUMNS.get(k, k) for k in keys)]
    body = [[name, *(f"{s[k]:.3f}" if k in s else "-" for k in keys)] for name, s in rows.items()]
    widths = [max(len(r[i]) for r in [heads, *body]) for i in range(len(heads))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    return "\n".join([line(heads), "  ".join("-" * w for w in widths), *map(line, body)])
