"""FSDD, the Free Spoken Digit Dataset (Jackson et al.): spoken digits 0-9 at 8 kHz.

Reference: Z. Jackson, C. Souza, J. Flaks, Y. Pan, H. Nicolas, A. Thite, "Jakobovski/
free-spoken-digit-dataset", Zenodo, doi:10.5281/zenodo.1342401. CC BY-SA 4.0.

Layout (the GitHub repository)::

    recordings/{digit}_{speaker}_{index}.wav      mono 16-bit WAV, 8 kHz

3,000 files: 6 speakers x 10 digits x 50 takes, 0.14-2.28 s long (mean 0.44 s; 99 % are
shorter than 0.92 s, hence the 1.0 s recommended clip length).

Protocols:
    ``official``  the README's split: takes 0-4 of every speaker and digit are the test set
                  (300 files), takes 5-49 the training set (2,700). Not speaker-disjoint.
    ``loso``      leave-one-speaker-out: one split per speaker (``speaker=<name>``), the honest
                  speaker-independent protocol.
"""

from __future__ import annotations

import re
from pathlib import Path

from classify.datasets.base import (
    Archive,
    Clip,
    ClipDataset,
    DatasetNotFound,
    Split,
    find_root,
)

CITATION = (
    "Z. Jackson et al., Free Spoken Digit Dataset (FSDD), "
    "https://github.com/Jakobovski/free-spoken-digit-dataset, doi:10.5281/zenodo.1342401"
)
# Archive of a fixed commit (the one the shared copy comes from). GitHub does not guarantee
# byte-stable archives, so no SHA-256 is pinned; --download stops after the
# transfer and prints its SHA-256; check it against the publisher and pass it with --sha256.
ARCHIVE = Archive(
    url=(
        "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/"
        "26eb9aaf76e81b692f806f9140c2d2777410d7a1.zip"
    ),
    filename="free-spoken-digit-dataset-26eb9aaf.zip",
    note="GitHub commit archive (about 15 MB); no stable checksum is published",
)
NAME_RE = re.compile(r"^(\d)_([A-Za-z0-9-]+)_(\d+)$")
TEST_TAKES = 5


def load(root: Path) -> ClipDataset:
    """Read FSDD from ``root/recordings/``.

    Args:
        root: the repository folder holding ``recordings/`` (or the folder it was unzipped in).

    Returns:
        :class:`ClipDataset` named ``fsdd``: classes ``"0"``..``"9"``, fold ``"test"`` for
        takes 0-4 and ``"train"`` otherwise, group = speaker, 8 kHz, 1.0 s; protocols
        ``official`` (default, one split) and ``loso`` (one split per speaker).

    Raises:
        DatasetNotFound: no ``recordings/`` folder or no ``{digit}_{speaker}_{index}.wav`` in it.
    """
    found = find_root(root, ("recordings",))
    if found is None:
        raise DatasetNotFound(
            f"fsdd: expected recordings/{{digit}}_{{speaker}}_{{index}}.wav under {root} "
            "(the free-spoken-digit-dataset layout)"
        )
    rec = found / "recordings"
    parsed = []
    for p in rec.glob("*.wav"):
        m = NAME_RE.match(p.stem)
        if m:
            parsed.append((m.group(2), int(m.group(1)), int(m.group(3)), p))
    if not parsed:
        raise DatasetNotFound(f"fsdd: {rec} holds no {{digit}}_{{speaker}}_{{index}}.wav files")
    parsed.sort(key=lambda t: (t[0], t[1], t[2]))
    clips = [
        Clip(path=p, label=d, fold="test" if k < TEST_TAKES else "train", group=spk)
        for spk, d, k, p in parsed
    ]
    return ClipDataset(
        name="fsdd",
        classes=[str(d) for d in range(10)],
        clips=clips,
        sample_rate=8000,
        clip_seconds=1.0,
        protocols=("official", "loso"),
        root=found,
        citation=CITATION,
        split_fns={"official": _official, "loso": _loso},
    )


def _official(ds: ClipDataset) -> list[Split]:
    test = tuple(i for i, c in enumerate(ds.clips) if c.fold == "test")
    train = tuple(i for i, c in enumerate(ds.clips) if c.fold != "test")
    return [Split("official", train, test)]


def _loso(ds: ClipDataset) -> list[Split]:
    out = []
    for spk in sorted(set(ds.groups)):
        test = tuple(i for i, c in enumerate(ds.clips) if c.group == spk)
        train = tuple(i for i, c in enumerate(ds.clips) if c.group != spk)
        out.append(Split(f"speaker={spk}", train, test))
    return out
