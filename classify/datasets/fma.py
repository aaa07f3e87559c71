"""FMA-small: 8,000 x 30 s MP3 clips, 8 balanced top genres (Defferrard et al., 2017).

Reference: M. Defferrard, K. Benzi, P. Vandergheynst and X. Bresson, "FMA: A Dataset for
Music Analysis", ISMIR 2017. https://github.com/mdeff/fma (audio CC licences per track).

Layout (the two official archives unpacked side by side)::

    fma_metadata/tracks.csv      three header rows (a column MultiIndex); columns used:
                                 (set, subset), (set, split), (track, genre_top), (artist, id)
    fma_small/<NNN>/<NNNNNN>.mp3 track id zero-padded to 6 digits, folder = its first 3

Protocol ``official``: the ``(set, split)`` column (training / validation / test: 6,400 /
800 / 800, artist-filtered by the authors); its validation part selects the epoch.

Three clips of fma_small hold no audio at all (099134, 108925, 133297; the maintainers'
list of known issues, mdeff/fma#41 and #44): they are left out and named in
:attr:`ClipDataset.notes`, never silently; any other missing file is an error.
"""

from __future__ import annotations

import csv
from pathlib import Path

from classify.datasets.base import Clip, ClipDataset, DatasetNotFound, Split, check_files_exist

CITATION = (
    "M. Defferrard, K. Benzi, P. Vandergheynst and X. Bresson, FMA: A Dataset for Music "
    "Analysis, ISMIR 2017"
)
#: fma_small clips without audio (mdeff/fma issues #41 and #44).
NO_AUDIO = (99134, 108925, 133297)
SPLITS = {"training": "train", "validation": "valid", "test": "test"}


def read_tracks(path: Path) -> list[dict[str, str]]:
    """Rows of ``tracks.csv`` keyed ``"<top>.<sub>"`` (e.g. ``"set.split"``) plus
    ``"track_id"``, from its three header rows.

    Raises:
        DatasetNotFound: missing file or columns.
    """
    if not path.is_file():
        raise DatasetNotFound(f"fma: {path} not found (unpack fma_metadata.zip next to fma_small/)")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            top, sub, _ = next(reader), next(reader), next(reader)
        except StopIteration:
            raise DatasetNotFound(f"fma: {path} has fewer than 3 header rows") from None
        keys = ["track_id"] + [f"{t}.{s}" for t, s in zip(top[1:], sub[1:], strict=False)]
        need = ("set.subset", "set.split", "track.genre_top", "artist.id")
        missing = [k for k in need if k not in keys]
        if missing:
            raise DatasetNotFound(f"fma: {path} lacks columns {', '.join(missing)}")
        return [dict(zip(keys, row, strict=False)) for row in reader if row]


def load(root: Path, *, subset: str = "small") -> ClipDataset:
    """Read FMA (``small`` subset) from its official layout.

    Args:
        root: the folder holding ``fma_metadata/`` and ``fma_<subset>/``.
        subset: ``small`` (8 genres, 8,000 clips); ``medium`` works with its own folder.

    Returns:
        :class:`ClipDataset` named ``fma_<subset>``: 22,050 Hz and 30 s recommended, groups =
        artist id, protocol ``official`` with its validation part.

    Raises:
        DatasetNotFound: missing metadata, audio folder or listed files.
    """
    root = Path(root)
    audio_dir = root / f"fma_{subset}"
    if not audio_dir.is_dir():
        raise DatasetNotFound(f"fma: {audio_dir} not found (unpack fma_{subset}.zip into {root})")
    rows = [r for r in read_tracks(root / "fma_metadata" / "tracks.csv")
            if r["set.subset"] == subset]  # fmt: skip
    if not rows:
        raise DatasetNotFound(f"fma: no track of subset {subset!r} in tracks.csv")
    genres = sorted({r["track.genre_top"] for r in rows})
    clips, left_out = [], []
    for r in sorted(rows, key=lambda r: int(r["track_id"])):
        tid = int(r["track_id"])
        if subset == "small" and tid in NO_AUDIO:
            left_out.append(f"{tid:06d}")
            continue
        clips.append(Clip(path=audio_dir / f"{tid:06d}"[:3] / f"{tid:06d}.mp3",
                          label=genres.index(r["track.genre_top"]),
                          fold=SPLITS.get(r["set.split"], r["set.split"]),
                          group=f"artist{r['artist.id']}"))  # fmt: skip
    check_files_exist([c.path for c in clips], f"fma_{subset}", "fma_metadata/tracks.csv")
    notes = f"left out (no audio, mdeff/fma#41): {', '.join(left_out)}" if left_out else ""
    return ClipDataset(
        name=f"fma_{subset}",
        classes=genres,
        clips=clips,
        sample_rate=22050,
        clip_seconds=30.0,
        protocols=("official",),
        root=root,
        citation=CITATION,
        notes=notes,
        split_fns={"official": _official},
    )


def _official(ds: ClipDataset) -> list[Split]:
    part = {k: tuple(i for i, c in enumerate(ds.clips) if c.fold == k) for k in SPLITS.values()}
    return [Split("official", part["train"], part["test"], part["valid"])]
