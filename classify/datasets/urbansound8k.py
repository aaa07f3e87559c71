"""UrbanSound8K: 8,732 urban sound excerpts (<= 4 s) in 10 classes (Salamon et al., 2014).

Reference: J. Salamon, C. Jacoby, J. P. Bello, "A Dataset and Taxonomy for Urban Sound
Research", Proc. ACM Multimedia 2014. https://urbansounddataset.weebly.com/urbansound8k.html,
archive on Zenodo record 1203745 (CC BY-NC 3.0).

Layout (``UrbanSound8K.tar.gz`` unpacks to ``UrbanSound8K/``)::

    metadata/UrbanSound8K.csv   slice_file_name,fsID,start,end,salience,fold,classID,class
    audio/fold1/ .. audio/fold10/<slice_file_name>

Protocol ``official``: the 10 pre-sorted folds; the authors warn that any other split leaks
(slices of one Freesound recording are in one fold), hence ``group = fsID``.
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
    "J. Salamon, C. Jacoby, J. P. Bello, A Dataset and Taxonomy for Urban Sound Research, "
    "Proc. ACM Multimedia 2014"
)
# Zenodo publishes an MD5 for this file (also used by the soundata loader); no SHA-256 is
# published, so none is pinned. The MD5 is checked; --sha256 adds a mandatory SHA-256 check.
ARCHIVE = Archive(
    url="https://zenodo.org/records/1203745/files/UrbanSound8K.tar.gz?download=1",
    filename="UrbanSound8K.tar.gz",
    md5="9aa69802bbf37fb986f71ec1483a196e",
    note="Zenodo record 1203745 (about 6 GB); MD5 as published on Zenodo",
)
MARKERS = ("metadata/UrbanSound8K.csv", "audio")
COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")


def load(root: Path) -> ClipDataset:
    """Read UrbanSound8K from its official layout.

    Args:
        root: the folder holding ``metadata/`` and ``audio/`` (or the folder it was unpacked in).

    Returns:
        :class:`ClipDataset` named ``urbansound8k``: 10 classes in ``classID`` order, folds
        ``"fold1"``..``"fold10"``, groups = ``fsID``, 22.05 kHz recommended (files mix
        rates), 4 s clips; protocol ``official`` with 10 splits.

    Raises:
        DatasetNotFound: missing metadata CSV, ``audio/`` or listed audio files.
    """
    found = find_root(root, MARKERS)
    if found is None:
        raise DatasetNotFound(
            f"urbansound8k: expected metadata/UrbanSound8K.csv and audio/fold1..fold10/ under "
            f"{root} (the UrbanSound8K archive layout)"
        )
    rows = read_csv(found / "metadata/UrbanSound8K.csv", COLUMNS)
    names: dict[int, str] = {}
    for r in rows:
        names.setdefault(int(r["classID"]), r["class"])
    ids = sorted(names)
    relabel = {c: i for i, c in enumerate(ids)}
    clips = [
        Clip(
            path=found / "audio" / f"fold{int(r['fold'])}" / r["slice_file_name"],
            label=relabel[int(r["classID"])],
            fold=f"fold{int(r['fold'])}",
            group=r["fsID"],
        )
        for r in sorted(rows, key=lambda r: (int(r["fold"]), r["slice_file_name"]))
    ]
    check_files_exist([c.path for c in clips], "urbansound8k", "metadata/UrbanSound8K.csv")
    return ClipDataset(
        name="urbansound8k",
        classes=[names[c] for c in ids],
        clips=clips,
        sample_rate=22050,
        clip_seconds=4.0,
        protocols=("official",),
        root=found,
        citation=CITATION,
        split_fns={"official": fold_tag_splits},
    )
