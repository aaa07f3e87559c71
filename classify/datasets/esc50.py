"""ESC-50: 2,000 five-second environmental recordings in 50 classes (Piczak, 2015).

Reference: K. J. Piczak, "ESC: Dataset for Environmental Sound Classification", Proc. ACM
Multimedia 2015. https://github.com/karolpiczak/ESC-50 (CC BY-NC 3.0).

Layout (the GitHub archive, ``ESC-50-master/``)::

    meta/esc50.csv      filename,fold,target,category,esc10,src_file,take
    audio/<filename>    5 s, 44.1 kHz, mono WAV

Protocol ``official``: the 5 pre-arranged folds (test on fold k, train on the other four).
Clips cut from the same Freesound source (``src_file``) share a fold by construction, so
``group = src_file`` never straddles. Option ``esc10=True`` keeps the ESC-10 subset
(10 classes, same folds), relabelled 0..9 in ``target`` order.
"""

from __future__ import annotations

from pathlib import Path

from classify.datasets.base import (
    Archive,
    Clip,
    ClipDataset,
    DatasetNotFound,
    check_files_exist,
    find_root,
    fold_tag_splits,
    read_csv,
)

CITATION = (
    "K. J. Piczak, ESC: Dataset for Environmental Sound Classification, Proc. ACM Multimedia 2015"
)
# GitHub builds branch archives on the fly; their bytes are not guaranteed stable, so no
# SHA-256 is pinned here. --download stops after the transfer and prints
# its SHA-256; check it against the publisher and pass it with --sha256.
ARCHIVE = Archive(
    url="https://github.com/karolpiczak/ESC-50/archive/master.zip",
    filename="ESC-50-master.zip",
    note="GitHub branch archive (about 600 MB); no stable checksum is published",
)
MARKERS = ("meta/esc50.csv", "audio")
COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")


def load(root: Path, *, esc10: bool = False) -> ClipDataset:
    """Read ESC-50 from its official layout.

    Args:
        root: the folder holding ``meta/`` and ``audio/`` (or the folder it was unzipped in).
        esc10: keep only the ESC-10 subset (10 classes).

    Returns:
        :class:`ClipDataset` named ``esc50`` (or ``esc10``), 44.1 kHz, 5 s clips, folds "1".."5",
        groups = ``src_file``; protocol ``official`` with 5 splits ``fold1``..``fold5``.

    Raises:
        DatasetNotFound: missing ``meta/esc50.csv``, ``audio/`` or listed audio files.
    """
    found = find_root(root, MARKERS)
    if found is None:
        raise DatasetNotFound(
            f"esc50: expected meta/esc50.csv and audio/ under {root} (the ESC-50 GitHub layout)"
        )
    rows = read_csv(found / "meta/esc50.csv", COLUMNS)
    if esc10:
        rows = [r for r in rows if r["esc10"].lower() in ("true", "1")]
        if not rows:
            raise DatasetNotFound(f"{found / 'meta/esc50.csv'}: no rows with esc10=True")
    names: dict[int, str] = {}
    for r in rows:
        names.setdefault(int(r["target"]), r["category"])
    targets = sorted(names)
    relabel = {t: i for i, t in enumerate(targets)}
    clips = [
        Clip(
            path=found / "audio" / r["filename"],
            label=relabel[int(r["target"])],
            fold=str(int(r["fold"])),
            group=r["src_file"],
        )
        for r in sorted(rows, key=lambda r: r["filename"])
    ]
    check_files_exist([c.path for c in clips], "esc50", "meta/esc50.csv")
    return ClipDataset(
        name="esc10" if esc10 else "esc50",
        classes=[names[t] for t in targets],
        clips=clips,
        sample_rate=44100,
        clip_seconds=5.0,
        protocols=("official",),
        root=found,
        citation=CITATION,
        split_fns={"official": fold_tag_splits},
    )
