"""The SSVD v2.0 sight-singing recordings and our fixed train / valid split of them.

SSVD v2.0 (Wang et al., "MusicYOLO: A sight-singing onset/offset detection framework based on
object detection instead of spectrum frames", ICASSP 2022; repository xk-wang/SSVD-v2.0, folder
``train&valid/``) holds 67 real recordings ``<id>.flac`` (44.1 kHz mono) of solo sight-singing,
each with ``<id>.txt`` notes (onset s, offset s, fractional MIDI pitch; see
:func:`~music.transcription.notes.read_notes`). The data stay in ``../shared/data/ssvd`` next to
the repository (:data:`DEFAULT_ROOT`) and are never copied into it.

Split: :data:`VALID_IDS` (15 recordings) is the validation part, the other 52 the training part.
Only the ``man<k>_<song>`` ids name their singer (``man1`` sang three songs, ``man2`` one); the
split keeps each such singer wholly on one side (both are in train). The numeric ids carry no
singer information, so for them the split is by recording: it cannot promise that a numeric-id
singer is absent from the other part. The sight-singing exercises recur, so some melodies are
sung in both parts.

Development part: :func:`split` with ``dev=n`` moves ``n`` training recordings into a ``dev``
part (whole singer groups, drawn with a seeded shuffle), so that a fine-tune on real singing can
choose its checkpoint on real singing without ever looking at the validation part.
"""

from __future__ import annotations

import os
from pathlib import Path

from wb.errors import WbError

#: ``../shared/data/ssvd/train_valid`` next to the repository checkout.
DEFAULT_ROOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "ssvd" / "train_valid"

#: The 15 validation recordings, drawn once (2026-12) and frozen: the 67 ids sorted as strings
#: were grouped by singer (``man1_*`` one group; every other id its own group), the sorted group
#: names shuffled with ``random.Random(0).shuffle``, and groups taken in that order, skipping
#: any that would overshoot, until 15 recordings were reached (the ``man*`` groups were not
#: reached). Listed in sorted order.
VALID_IDS = (
    "1078", "1099", "1101", "1156", "1206", "1207", "1212", "1218",
    "1221", "1228", "1230", "1355", "335", "364", "4193",
)  # fmt: skip

#: Audio file extensions searched, in order of preference.
AUDIO_EXTENSIONS = (".flac", ".wav")


def singer(recording_id: str) -> str:
    """The singer group of a recording id: ``"man1"`` for ``"man1_twinkle"``; a numeric id (no
    singer information) is its own group."""
    return recording_id.split("_", 1)[0] if "_" in recording_id else recording_id


def list_recordings(root: str | os.PathLike = DEFAULT_ROOT) -> list[tuple[str, Path, Path]]:
    """All annotated recordings in ``root``: pairs ``<id>.flac`` (or ``.wav``) + ``<id>.txt``.

    Audio without notes and notes without audio are ignored.

    Args:
        root: the ``train_valid`` folder.

    Returns:
        ``[(id, audio_path, notes_path), ...]`` sorted by id (as strings).

    Raises:
        WbError: ``root`` is missing, not a folder, or holds no audio + notes pair.
    """
    r = Path(root)
    if not r.is_dir():
        raise WbError(f"{r}: SSVD folder not found (expected <id>.flac + <id>.txt pairs)")
    out = []
    for txt in sorted(r.glob("*.txt"), key=lambda p: p.stem):
        audio = next((a for ext in AUDIO_EXTENSIONS if (a := txt.with_suffix(ext)).is_file()), None)
        if audio is not None and txt.is_file():
            out.append((txt.stem, audio, txt))
    if not out:
        raise WbError(f"{r}: no SSVD recordings (<id>.flac + <id>.txt pairs) found")
    return out


def take_groups(ids: list[str], n: int, seed: int) -> list[str]:
    """About ``n`` of ``ids``, whole singer groups (:func:`singer`) at a time.

    The sorted group names are shuffled with ``random.Random(seed)`` and taken in that order,
    skipping any group that would overshoot ``n``, until ``n`` ids are reached or the groups
    run out (the procedure that drew :data:`VALID_IDS`, with seed 0).

    Returns:
        The chosen ids, sorted as strings.
    """
    import random

    groups: dict[str, list[str]] = {}
    for i in sorted(ids):
        groups.setdefault(singer(i), []).append(i)
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    chosen: list[str] = []
    for name in names:
        if len(chosen) + len(groups[name]) <= n:
            chosen += groups[name]
        if len(chosen) == n:
            break
    return sorted(chosen)


#: Seed of :func:`take_groups` for the development part of :func:`split`.
DEV_SEED = 1


def split(
    root: str | os.PathLike = DEFAULT_ROOT, dev: int = 0
) -> dict[str, list[tuple[str, Path, Path]]]:
    """The fixed train / valid split of the recordings in ``root``, and optionally a
    development part taken out of train.

    Args:
        root: the ``train_valid`` folder.
        dev: how many training recordings to move into ``dev`` (whole singer groups,
            :func:`take_groups` with :data:`DEV_SEED`); 0 for none.

    Returns:
        ``{"train": [...], "dev": [...], "valid": [...]}``, items as in
        :func:`list_recordings`; ``valid`` holds exactly :data:`VALID_IDS` (in that order),
        ``dev`` the ``dev`` drawn recordings, ``train`` every other recording.

    Raises:
        WbError: as :func:`list_recordings`; a :data:`VALID_IDS` recording is missing;
            ``dev`` is negative or leaves no training recording.
    """
    recs = list_recordings(root)
    by_id = {r[0]: r for r in recs}
    missing = [i for i in VALID_IDS if i not in by_id]
    if missing:
        raise WbError(
            f"{root}: SSVD validation recording(s) missing: {', '.join(missing)} "
            f"(need <id>.flac + <id>.txt)"
        )
    valid = set(VALID_IDS)
    train = [r for r in recs if r[0] not in valid]
    if dev < 0 or (dev and dev >= len(train)):
        raise WbError(f"data.ssvd_dev={dev}: need 0 <= dev < {len(train)} training recordings")
    held = set(take_groups([r[0] for r in train], dev, DEV_SEED)) if dev else set()
    return {
        "train": [r for r in train if r[0] not in held],
        "dev": [r for r in train if r[0] in held],
        "valid": [by_id[i] for i in VALID_IDS],
    }
