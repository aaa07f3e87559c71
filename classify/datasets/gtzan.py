"""GTZAN genre collection: 1,000 x 30 s excerpts, 10 genres (Tzanetakis & Cook, 2002).

Reference: G. Tzanetakis and P. Cook, "Musical genre classification of audio signals", IEEE
Trans. Speech and Audio Processing 10(5), 2002.

Layout (the ``genres.tar.gz`` archive; Kaggle's WAV copy ``genres_original/`` too)::

    <genre>/<genre>.000NN.au      (or .wav), 22,050 Hz mono, about 30 s

Protocols:

* ``filtered`` (default): the artist-filtered, fault-filtered split of Kereliuk, Sturm &
  Larsen (2015): 443 train / 197 validation / 290 test excerpts, repetitions, mislabelings and
  distortions removed and no artist in two parts (lists in ``gtzan_filtered/``, package data).
  The honest figure.
* ``10fold``: the common random stratified 10-fold split of all 1,000 excerpts. **Optimistic**:
  GTZAN repeats excerpts and artists across genres' files and mislabels some (Sturm 2013,
  "The GTZAN dataset: its contents, its faults, their effects on evaluation, and the future
  use"), so the same artist or even the same audio lands in train and test.

``jazz.00054`` is known to be unreadable in widely shared WAV copies: when it cannot be
decoded (or decodes to less than a second) it is left out and named in
:attr:`ClipDataset.notes` instead of failing a whole run; any other unreadable file fails
when it is first decoded, naming the file.
"""

from __future__ import annotations

from pathlib import Path

from classify.datasets.base import (
    Archive,
    Clip,
    ClipDataset,
    DatasetNotFound,
    Split,
    find_root,
    stratified_group_kfold,
)

CITATION = (
    "G. Tzanetakis and P. Cook, Musical genre classification of audio signals, IEEE Trans. "
    "Speech and Audio Processing 10(5), 2002; fault-filtered split: C. Kereliuk, B. L. Sturm "
    "and J. Larsen, Deep learning and music adversaries, IEEE Trans. Multimedia 17(11), 2015"
)
# The original marsyas address; no checksum is published, so none is pinned: --download
# stops after the transfer and prints its SHA-256 to check and pass back with --sha256.
ARCHIVE = Archive(
    url="http://opihi.cs.uvic.ca/sound/genres.tar.gz",
    filename="genres.tar.gz",
    note="marsyas archive (about 1.2 GB); no checksum is published",
)
GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop",
          "reggae", "rock")  # fmt: skip
EXTENSIONS = (".au", ".wav")
KNOWN_CORRUPT = ("jazz.00054",)
LISTS = Path(__file__).with_name("gtzan_filtered")
FOLDS = 10


def filtered_lists() -> dict[str, list[str]]:
    """``{"train", "valid", "test"}`` -> excerpt names (``blues.00029``) of the fault-filtered
    split (package data)."""
    out = {}
    for part in ("train", "valid", "test"):
        lines = (LISTS / f"{part}_filtered.txt").read_text().split()
        out[part] = [Path(line).stem for line in lines if line.strip()]
    return out


def _filtered(ds: ClipDataset) -> list[Split]:
    index = {c.path.stem: i for i, c in enumerate(ds.clips)}
    lists = filtered_lists()
    parts = {k: tuple(sorted(index[n] for n in v if n in index)) for k, v in lists.items()}
    return [Split("filtered", parts["train"], parts["test"], parts["valid"])]


def _ten_fold(ds: ClipDataset) -> list[Split]:
    folds = stratified_group_kfold(ds.labels, ds.groups, FOLDS, seed=0)
    out = []
    for k in range(FOLDS):
        test = tuple(int(i) for i in (folds == k).nonzero()[0])
        train = tuple(int(i) for i in (folds != k).nonzero()[0])
        out.append(Split(f"fold{k + 1}", train, test))
    return out


def load(root: Path) -> ClipDataset:
    """Read GTZAN from its official layout.

    Args:
        root: the ``genres/`` folder (or the folder it was unpacked in).

    Returns:
        :class:`ClipDataset` named ``gtzan``: 22,050 Hz, 30 s, groups = excerpt (GTZAN has
        no artist metadata); protocols ``filtered`` (default) and ``10fold``.

    Raises:
        DatasetNotFound: no genre folders, a genre without excerpts, or an unreadable file
            other than the known-corrupt ones.
    """
    from wb import audio
    from wb.errors import AudioError

    found = find_root(Path(root), GENRES)
    if found is None:
        raise DatasetNotFound(
            f"gtzan: expected the 10 genre folders ({', '.join(GENRES)}) under {root}"
        )
    clips, left_out = [], []
    for label, genre in enumerate(GENRES):
        files = sorted(
            p for p in (found / genre).iterdir()
            if p.suffix.lower() in EXTENSIONS and not p.name.startswith(".")
        )  # fmt: skip
        if not files:
            raise DatasetNotFound(f"gtzan: {found / genre} holds no .au or .wav excerpts")
        for p in files:
            if p.stem in KNOWN_CORRUPT:
                try:
                    x, sr = audio.load(p)
                    ok = x.shape[-1] >= sr  # at least 1 s: a 30 s excerpt, not a stub
                except AudioError:
                    ok = False
                if not ok:
                    left_out.append(p.name)
                    continue
            clips.append(Clip(path=p, label=label, fold="", group=p.stem))
    notes = f"left out (unreadable, known-corrupt): {', '.join(left_out)}" if left_out else ""
    return ClipDataset(
        name="gtzan",
        classes=list(GENRES),
        clips=clips,
        sample_rate=22050,
        clip_seconds=30.0,
        protocols=("filtered", "10fold"),
        root=found,
        citation=CITATION,
        notes=notes,
        split_fns={"filtered": _filtered, "10fold": _ten_fold},
    )
