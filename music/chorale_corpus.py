"""The music21 Bach corpus as four-voice note lists, a parse cache, same-tune detection, splits.

Works come from ``music21.corpus.getComposer('bach')`` and are named like the corpus,
``bach/bwv255`` (one entry per name; ``.mxl`` is preferred when a work also ships as
``.krn``). A part is *singable* when its name names a voice (soprano, alto, tenor, bass,
cantus, ...; instrumental doublings such as ``"Soprano Oboe 1 Violin1"`` still count) or,
unnamed, when it is monophonic and lies within C2..C6; parts named after instruments (Horn,
Violin, Continuo, Timpani, ...) are not. Works with exactly four singable parts are used,
the four mapped to soprano, alto, tenor, bass by mean pitch (highest first); every other work
is skipped with a reason.

Notes are ``[midi_pitch, onset_ql, duration_ql, fermata]`` with times in quarter notes
(music21 ``quarterLength``), tied notes merged (``stripTies``).

Same-tune rule (used to keep every harmonisation of a held-out melody out of training):
each soprano becomes its pitch sequence with consecutive repeats removed and rhythm ignored;
two melodies are compared after transposing one onto the other (three candidate alignments:
final notes, first notes, most frequent pitches) by the length L of their longest common
subsequence. They are the same tune when

* ``2 L / (len_a + len_b) >= 0.8`` (the two melodies are mostly the same notes), or
* ``L / min(len_a, len_b) >= 0.95`` and the shorter has at least 16 notes and at least
  0.6 of the longer's length (one version writes out a repeat or adds a phrase).

Comparing pitches rather than intervals keeps a passing note that fills a third from
breaking two intervals (Bach ornaments the melody differently between harmonisations:
``bach/bwv385`` and ``bach/bwv169.7``, both *Nun bitten wir den heiligen Geist*, score 0.43
by interval similarity but 0.82 here). On the corpus, unrelated melodies score below about
0.75; the rule is deliberately inclusive because a false match only moves a work into test.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from wb.errors import ConfigError
from wb.paths import cache_root

VOICES = ("soprano", "alto", "tenor", "bass")
EXTRACT_VERSION = 1
_EXT_PREFERENCE = {".mxl": 0, ".xml": 1, ".musicxml": 1, ".krn": 2, ".mid": 3}
_VOICE_WORDS = re.compile(
    r"\b(soprano|sopran|alto|altus|alt|tenor|tenore|bass|bassus|cantus|canto|discantus|"
    r"voice|vox)\b",
    re.IGNORECASE,
)
_SINGABLE_RANGE = (36, 84)  # C2..C6 for unnamed parts

# Same-tune thresholds (see module docstring).
TUNE_DICE = 0.8
TUNE_CONTAINMENT = 0.95
TUNE_MIN_RATIO = 0.6
TUNE_MIN_NOTES = 16


# ----------------------------------------------------------------------------------- corpus
def corpus_works() -> dict[str, Path]:
    """All works of ``music21.corpus.getComposer('bach')``, one file per corpus name.

    Returns:
        ``{"bach/bwv255": Path(".../bach/bwv255.mxl"), ...}`` sorted by name; when a name
        exists in several encodings the MusicXML file is kept.
    """
    from music21 import corpus

    best: dict[str, Path] = {}
    for p in corpus.getComposer("bach"):
        p = Path(p)
        name = f"bach/{p.stem}"
        rank = _EXT_PREFERENCE.get(p.suffix.lower(), 9)
        if name not in best or rank < _EXT_PREFERENCE.get(best[name].suffix.lower(), 9):
            best[name] = p
    return dict(sorted(best.items()))


def normalize_name(name: str) -> str:
    """``"bwv255"`` or ``"bach/bwv255"`` (or with an extension) -> ``"bach/bwv255"``."""
    name = name.strip()
    if "/" not in name:
        name = f"bach/{name}"
    stem, ext = os.path.splitext(name)
    return stem if ext.lower() in _EXT_PREFERENCE or ext.lower() == ".rntxt" else name


def read_heldout(path: str | os.PathLike) -> list[str]:
    """Read the held-out chorale list: one corpus name a line, ``#`` starts a comment.

    Args:
        path: text file such as ``../shared/heldout_chorales.txt``.

    Returns:
        Normalised corpus names (``bach/bwv255``) in file order, duplicates removed.

    Raises:
        ConfigError: the file does not exist or lists no work.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"held-out chorale list {p} not found (set heldout=<path>)")
    names: list[str] = []
    for line in p.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and normalize_name(line) not in names:
            names.append(normalize_name(line))
    if not names:
        raise ConfigError(f"held-out chorale list {p} names no work")
    return names


def _part_name(part: Any) -> str:
    name = part.partName or ""
    if not name and isinstance(part.id, str) and not part.id.isdigit():
        name = part.id
    return " ".join(str(name).split())


def _is_voice_name(name: str) -> bool | None:
    """True: names a voice; False: names something else; None: no name."""
    if not name.strip():
        return None
    if re.search(r"continuo|organ|orgel|timpani", name, re.IGNORECASE) and not re.search(
        r"\b(soprano|alto|tenor|bass)\b", name, re.IGNORECASE
    ):
        return False
    return bool(_VOICE_WORDS.search(name))


def extract_work(name: str, path: str | os.PathLike) -> dict[str, Any]:
    """Parse one corpus file and extract its four voices (the slow step, ~0.3 s a work).

    Args:
        name: corpus name, e.g. ``bach/bwv255``.
        path: the file to parse.

    Returns:
        ``{"name", "source", "size", "status": "ok", "parts": {voice: [[pitch, onset_ql,
        dur_ql, fermata], ...]}, "part_names": {voice: str}, "length_ql"}`` for a usable
        work, or ``{"name", "source", "size", "status": "skipped", "reason"}``.
        Never raises for a bad file: parse errors become a skip reason.
    """
    from music21 import converter, expressions

    p = Path(path)
    rec: dict[str, Any] = {
        "name": name,
        "source": f"bach/{p.name}",
        "size": p.stat().st_size if p.exists() else -1,
    }

    def skip(reason: str) -> dict[str, Any]:
        return {**rec, "status": "skipped", "reason": reason}

    try:
        score = converter.parse(str(p))
        parts = list(score.parts)
    except Exception as exc:  # noqa: BLE001 - any music21 failure is a skip reason
        return skip(f"could not be parsed ({type(exc).__name__})")
    singable: list[tuple[str, list[list[float]]]] = []
    for part in parts:
        pname = _part_name(part)
        voice = _is_voice_name(pname)
        if voice is False:
            continue
        flat = part.flatten().stripTies()
        notes: list[list[float]] = []
        chords = False
        for n in flat.notes:
            if n.isChord:
                chords = True
                continue
            ql = float(n.quarterLength)
            if ql <= 0 or not hasattr(n, "pitch"):
                continue  # grace notes, unpitched
            fermata = any(isinstance(e, expressions.Fermata) for e in n.expressions)
            notes.append([int(n.pitch.midi), float(n.offset), ql, int(fermata)])
        if not notes:
            continue
        pitches = [n[0] for n in notes]
        if voice is None:
            in_range = _SINGABLE_RANGE[0] <= min(pitches) and max(pitches) <= _SINGABLE_RANGE[1]
            if chords or not in_range:
                continue
        elif chords:
            return skip("a vocal part contains chords")
        notes.sort(key=lambda n: (n[1], -n[0]))
        overlaps = sum(
            1 for a, b in zip(notes, notes[1:], strict=False) if b[1] < a[1] + a[2] - 1e-6
        )
        if overlaps:
            return skip("a vocal part is not monophonic (divisi)")
        singable.append((pname, notes))
    if len(singable) != 4:
        return skip(f"{len(singable)} singable parts (need exactly 4)")
    order = sorted(singable, key=lambda s: -sum(n[0] for n in s[1]) / len(s[1]))
    parts_out = {v: notes for v, (_, notes) in zip(VOICES, order, strict=True)}
    names_out = {v: pname for v, (pname, _) in zip(VOICES, order, strict=True)}
    length = max(n[1] + n[2] for notes in parts_out.values() for n in notes)
    return {**rec, "status": "ok", "parts": parts_out, "part_names": names_out, "length_ql": length}


def _extract_job(item: tuple[str, str]) -> dict[str, Any]:
    return extract_work(*item)


def mp_context() -> Any:
    """The multiprocessing context for worker pools: ``fork`` where available (workers then
    need no ``if __name__ == "__main__"`` guard in the caller's script), else ``spawn``."""
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def cache_file(cache_dir: str | os.PathLike | None) -> Path:
    """The JSON parse cache for this music21 version and extractor version."""
    import music21

    root = Path(cache_dir).expanduser() if cache_dir else cache_root()
    return root / "chorales" / f"bach_m21-{music21.__version__}_v{EXTRACT_VERSION}.json"


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def load_works(
    names: Iterable[str],
    paths: Mapping[str, Path],
    cache_dir: str | os.PathLike | None = None,
    jobs: int = 1,
    quiet: bool | None = None,
) -> dict[str, dict[str, Any]]:
    """Extracted works by name, parsing (in ``jobs`` processes) only those not cached.

    The cache is one JSON file (see :func:`cache_file`); an entry is reused while the
    corpus file keeps its size. Parsing the whole corpus takes about 100 s on 2 cores the
    first time and well under a second afterwards.

    Args:
        names: corpus names to load.
        paths: corpus name -> file (from :func:`corpus_works`).
        cache_dir: cache root (default :func:`wb.paths.cache_root`).
        jobs: worker processes for parsing.
        quiet: no progress bar when True.

    Returns:
        ``{name: record}`` (records as returned by :func:`extract_work`).
    """
    from wb.progress import progress
    from wb.runs import write_json

    cpath = cache_file(cache_dir)
    cache = _read_cache(cpath)
    out: dict[str, dict[str, Any]] = {}
    todo: list[tuple[str, str]] = []
    for name in dict.fromkeys(names):
        p = paths[name]
        rec = cache.get(name)
        if rec is not None and rec.get("size") == p.stat().st_size:
            out[name] = rec
        else:
            todo.append((name, str(p)))
    if not todo:
        return out
    bar = progress(total=len(todo), desc="parsing corpus", unit="work", quiet=quiet)
    new: dict[str, dict[str, Any]] = {}
    try:
        if jobs <= 1 or len(todo) < 4:
            for item in todo:
                new[item[0]] = _extract_job(item)
                bar.update(1)
        else:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=jobs, mp_context=mp_context()) as pool:
                for rec in pool.map(_extract_job, todo, chunksize=4):
                    new[rec["name"]] = rec
                    bar.update(1)
    finally:
        bar.close()
        if new:
            merged = _read_cache(cpath)
            merged.update(new)
            with contextlib.suppress(OSError):  # an unwritable cache only costs time
                write_json(cpath, merged)
    out.update(new)
    return out


# ------------------------------------------------------------------------------ same tune
def melody_profile(pitches: Sequence[int]) -> list[int]:
    """A melody as its MIDI pitches with consecutive repeats removed (rhythm ignored)."""
    out: list[int] = []
    for p in pitches:
        if not out or out[-1] != p:
            out.append(int(p))
    return out


def interval_sequence(pitches: Sequence[int]) -> list[int]:
    """Successive pitch intervals in semitones, repeated notes ignored (transposition free)."""
    prof = melody_profile(pitches)
    return [b - a for a, b in zip(prof, prof[1:], strict=False)]


def lcs_length(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common subsequence (bit-parallel algorithm of Hyyrö, 2004).

    ``O(len(a) * len(b) / wordsize)`` using Python integers as bit vectors.
    """
    if not a or not b:
        return 0
    masks: dict[int, int] = {}
    for i, x in enumerate(a):
        masks[x] = masks.get(x, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for y in b:
        u = v & masks.get(y, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - bin(v).count("1")


def tune_similarity(a: Sequence[int], b: Sequence[int]) -> tuple[float, float]:
    """Similarity of two melodies given as MIDI pitch lists (any key, any rhythm).

    Args:
        a, b: MIDI pitches in order; repeats are removed first (:func:`melody_profile`).

    Returns:
        ``(dice, containment)``: ``2 L / (len_a + len_b)`` and ``L / min(len_a, len_b)``
        where ``L`` is the longest common subsequence after transposing ``b`` onto ``a``
        (best of the final-note, first-note and most-frequent-pitch alignments).
    """
    pa, pb = melody_profile(a), melody_profile(b)
    if not pa or not pb:
        return 0.0, 0.0
    mode_a = Counter(pa).most_common(1)[0][0]
    mode_b = Counter(pb).most_common(1)[0][0]
    best = 0
    for shift in {pa[-1] - pb[-1], pa[0] - pb[0], mode_a - mode_b}:
        best = max(best, lcs_length(pa, [x + shift for x in pb]))
    return 2 * best / (len(pa) + len(pb)), best / min(len(pa), len(pb))


def same_tune(a: Sequence[int], b: Sequence[int]) -> bool:
    """Whether two soprano lines (MIDI pitch lists) are harmonisations of one chorale tune.

    The rule and its thresholds are in the module docstring.
    """
    dice, containment = tune_similarity(a, b)
    if dice >= TUNE_DICE:
        return True
    la, lb = len(melody_profile(a)), len(melody_profile(b))
    short, long_ = min(la, lb), max(la, lb)
    return (
        containment >= TUNE_CONTAINMENT
        and short >= TUNE_MIN_NOTES
        and short >= TUNE_MIN_RATIO * long_
    )


def soprano_pitches(work: Mapping[str, Any]) -> list[int]:
    """The soprano's MIDI pitches of an extracted work."""
    return [int(n[0]) for n in work["parts"]["soprano"]]


# ----------------------------------------------------------------------------------- splits
def valid_score(name: str) -> float:
    """A fixed pseudo-random number in [0, 1) for a work (sha256 of its name)."""
    digest = hashlib.sha256(f"wb-chorales-valid|v1|{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_splits(
    works: Mapping[str, Mapping[str, Any]],
    heldout: Sequence[str],
    valid_fraction: float = 0.05,
) -> tuple[dict[str, str], dict[str, str]]:
    """Deterministic train / valid / test split of usable works.

    Test holds every held-out work and every work whose soprano is the same tune as a
    held-out work's (:func:`same_tune`). Of the rest, a work is in valid when
    :func:`valid_score` of its name is below ``valid_fraction`` (so a work's split never
    depends on which other works are rendered), else in train.

    Args:
        works: extracted works by name; skipped works are ignored. Held-out works must be
            included (their sopranos define the test tunes).
        heldout: held-out corpus names.
        valid_fraction: share of the non-test works put in valid (0..1).

    Returns:
        ``(splits, pulled)``: ``{name: "train" | "valid" | "test"}`` for every usable work,
        and ``{name: heldout_name}`` for the works pulled into test by the same-tune rule.

    Raises:
        ConfigError: a held-out work is missing from ``works`` or was skipped.
    """
    held = set(heldout)
    unusable = [h for h in heldout if works.get(h, {}).get("status") != "ok"]
    if unusable:  # its tune could not protect its other harmonisations from train/valid
        raise ConfigError(
            f"held-out work(s) {', '.join(unusable)} could not be read as 4-part chorales, so "
            "their other harmonisations cannot be kept out of train/valid"
        )
    tunes = {h: soprano_pitches(works[h]) for h in heldout}
    splits: dict[str, str] = {}
    pulled: dict[str, str] = {}
    for name, rec in works.items():
        if rec.get("status") != "ok":
            continue
        if name in held:
            splits[name] = "test"
            continue
        sop = soprano_pitches(rec)
        match = next((h for h, tune in tunes.items() if same_tune(sop, tune)), None)
        if match is not None:
            splits[name] = "test"
            pulled[name] = match
        elif valid_score(name) < valid_fraction:
            splits[name] = "valid"
        else:
            splits[name] = "train"
    return splits, pulled
