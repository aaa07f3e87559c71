"""Coral reef soundscapes: one-minute hydrophone recordings of healthy, degraded and restored
reefs (Williams et al., 2024).

References: B. Williams et al., "Unlocking the soundscape of coral reefs with artificial
intelligence: pretrained networks and unsupervised learning win out", bioRxiv
10.1101/2024.02.02.578582 (2024), PLoS Comput. Biol. 21(4) e1013029 (2025); data and code on
Zenodo, doi:10.5281/zenodo.11106482 (code: github.com/BenUCL/Reef-acoustics-and-AI). The audio
is the Indonesian restoration-programme library of B. Williams et al., Ecological Indicators
140, 108986 (2022).

What is known about the published archive (from the authors' repository; the archive itself
could not be inspected offline): the zip holds ``audio_dir/`` with one-minute ``.wav`` files
whose *names* carry the labels; there is no per-file metadata table. Two naming conventions
occur::

    H.BaN12.0529.805322778.180907.1.24.wav   <class>.<site+day>.<HHMM>.<recorder>.<YYMMDD>.<n>.<min>
    BaN12.0529H.805322778.180907.1.24.wav    <site+day>.<HHMM><class>.<recorder>.<YYMMDD>.<n>.<min>

with class letter H = healthy, D = degraded, R = restored. The authors split train/test by
*deployment* (one recorder dropped for about an hour: same site, day, start time, recorder), so
that neighbouring minutes never straddle train and test. Here the deployment is the file name
without its last two dot-fields (file index and minute).

Layout this reader expects (``root`` = ``data_dir``)::

    root/audio_dir/**/*.wav        (or root/<one folder>/audio_dir/, or the wavs under root)
    root/metadata.csv              optional; overrides the file-name convention

An optional metadata CSV (option ``metadata`` or ``root/metadata.csv``) must have a file
column (``filename`` | ``file`` | ``path``, relative to the audio folder or absolute), a label
column (``label`` | ``class`` | ``habitat``) and may have a group column (``deployment`` |
``group`` | ``site``); without a group column each file name's deployment (as above) is used,
falling back to the file itself. Option ``group_regex`` (first capture group applied to the
file name) overrides the grouping, e.g. ``r"^(?:[HDR]\\.)?([A-Za-z]+\\d+)"`` for site-level
folds.

Protocol ``grouped``: deterministic stratified-group k-fold over deployments (option ``folds``,
default 5; ``seed`` 0). 16 kHz and 60 s are recommended (VGGish-style analysis of whole
minutes, as in the paper's pretrained-CNN pipeline).
"""

from __future__ import annotations

import re
from pathlib import Path

from classify.datasets.base import (
    AUDIO_EXTENSIONS,
    Archive,
    Clip,
    ClipDataset,
    DatasetNotFound,
    find_root,
    fold_tag_splits,
    list_audio,
    read_csv,
    stratified_group_kfold,
)
from wb.errors import ConfigError

CITATION = (
    "B. Williams et al., Unlocking the soundscape of coral reefs with artificial intelligence: "
    "pretrained networks and unsupervised learning win out, PLoS Comput. Biol. 21(4) e1013029 "
    "(2025), bioRxiv 10.1101/2024.02.02.578582; data doi:10.5281/zenodo.11106482"
)
# The Zenodo file name below is the authors' description ("Reef-acoustics-and-AI.zip ...
# audio_dir"), not verified against the record (no network here); pass url=... if it moved.
# No checksum is known offline: --download stops after the
# transfer and prints its SHA-256; check it against the publisher and pass it with --sha256.
ARCHIVE = Archive(
    url="https://zenodo.org/records/11106482/files/Reef-acoustics-and-AI.zip?download=1",
    filename="Reef-acoustics-and-AI.zip",
    note="Zenodo record 11106482 (about 1.5 GB); file name and checksum unverified offline",
)
CLASS_CODES = {"H": "healthy", "D": "degraded", "R": "restored"}
NEW_RE = re.compile(r"^([HDR])\.[^.]+\.\d{4}\.")
OLD_RE = re.compile(r"^[^.]+\.\d{4}([HDR])\.")
FILE_COLUMNS = ("filename", "file", "path")
LABEL_COLUMNS = ("label", "class", "habitat")
GROUP_COLUMNS = ("deployment", "group", "site")


def parse_name(name: str) -> tuple[str, str] | None:
    """Class name and deployment id from a file name, or ``None`` when it follows neither
    convention (see the module docstring)."""
    stem = Path(name).stem if Path(name).suffix.lower() in AUDIO_EXTENSIONS else name
    m = NEW_RE.match(stem + ".") or OLD_RE.match(stem + ".")
    if not m:
        return None
    fields = stem.split(".")
    deployment = ".".join(fields[:-2]) if len(fields) > 4 else stem
    return CLASS_CODES[m.group(1)], deployment


def _audio_folder(root: Path) -> Path | None:
    nested = find_root(root, ("audio_dir",))
    for cand in (nested / "audio_dir" if nested else None, root):
        if cand is not None and cand.is_dir() and list_audio(cand):
            return cand
    return None


def load(
    root: Path,
    *,
    folds: int = 5,
    seed: int = 0,
    metadata: str | Path | None = None,
    group_regex: str | None = None,
) -> ClipDataset:
    """Read the coral reef soundscape recordings.

    Args:
        root: the unpacked Zenodo archive (or any folder laid out as in the module docstring).
        folds: number of group-disjoint folds (>= 2).
        seed: fold-assignment seed.
        metadata: optional CSV with file, label and group columns.
        group_regex: regex whose first group, applied to the file name, gives the group.

    Returns:
        :class:`ClipDataset` named ``coral``: classes among healthy/degraded/restored (or the
        CSV's labels, sorted), groups = deployments, folds "1".."k"; protocol ``grouped``.

    Raises:
        DatasetNotFound: no audio, a metadata file that is missing or lacks columns, or files
            that follow neither naming convention (without a metadata CSV).
        ConfigError: a bad ``group_regex`` or a file it does not match.
    """
    root = Path(root)
    audio = _audio_folder(root)
    if audio is None:
        raise DatasetNotFound(
            f"coral: expected one-minute .wav files under {root}/audio_dir (the Zenodo "
            "10.5281/zenodo.11106482 archive layout)"
        )
    meta = Path(metadata).expanduser() if metadata is not None else None
    if meta is None and (root / "metadata.csv").is_file():
        meta = root / "metadata.csv"
    records = _from_csv(meta, audio) if meta is not None else _from_names(audio)
    if group_regex is not None:
        records = [(p, lab, _regex_group(group_regex, p)) for p, lab, _ in records]
    present = {lab for _, lab, _ in records}
    known = [c for c in CLASS_CODES.values() if c in present]
    classes = known + sorted(present - set(known))
    if len(classes) < 2:
        raise DatasetNotFound(f"coral: {audio} holds only one class ({classes[0]})")
    labels = [classes.index(lab) for _, lab, _ in records]
    groups = [g for _, _, g in records]
    assignment = stratified_group_kfold(labels, groups, folds, seed)
    clips = [
        Clip(path=p, label=lab, fold=str(int(f) + 1), group=g)
        for (p, _, g), lab, f in zip(records, labels, assignment, strict=True)
    ]
    return ClipDataset(
        name="coral",
        classes=classes,
        clips=clips,
        sample_rate=16000,
        clip_seconds=60.0,
        protocols=("grouped",),
        root=root,
        citation=CITATION,
        split_fns={"grouped": fold_tag_splits},
    )


def _from_names(audio: Path) -> list[tuple[Path, str, str]]:
    records, bad = [], []
    for p in list_audio(audio):
        parsed = parse_name(p.name)
        if parsed is None:
            bad.append(p)
        else:
            records.append((p, parsed[0], parsed[1]))
    if bad:
        raise DatasetNotFound(
            f"coral: {len(bad)} file(s) under {audio} follow neither naming convention "
            f"'H.<site>.<HHMM>.<rec>.<YYMMDD>.<n>.<min>.wav' nor "
            f"'<site>.<HHMM>H.<rec>.<YYMMDD>.<n>.<min>.wav' (e.g. {bad[0].name}); "
            "provide a metadata CSV"
        )
    return records


def _from_csv(meta: Path, audio: Path) -> list[tuple[Path, str, str]]:
    rows = read_csv(meta, ())
    cols = set(rows[0])
    fcol = next((c for c in FILE_COLUMNS if c in cols), None)
    lcol = next((c for c in LABEL_COLUMNS if c in cols), None)
    gcol = next((c for c in GROUP_COLUMNS if c in cols), None)
    if fcol is None or lcol is None:
        raise DatasetNotFound(
            f"{meta}: needs a file column ({' | '.join(FILE_COLUMNS)}) and a label column "
            f"({' | '.join(LABEL_COLUMNS)}); found {', '.join(sorted(cols))}"
        )
    records = []
    for r in rows:
        p = Path(r[fcol])
        if not p.is_absolute():
            p = audio / p if (audio / p).is_file() else meta.parent / p
        if not p.is_file():
            raise DatasetNotFound(f"{meta}: listed file {r[fcol]} not found under {audio}")
        if gcol and r[gcol]:
            group = r[gcol]
        else:
            parsed = parse_name(p.name)
            group = parsed[1] if parsed else p.name
        records.append((p, r[lcol].strip().lower(), group))
    return sorted(records, key=lambda t: str(t[0]))


def _regex_group(pattern: str, path: Path) -> str:
    try:
        m = re.search(pattern, path.name)
    except re.error as exc:
        raise ConfigError(f"coral: group_regex {pattern!r} is not a valid regex ({exc})") from None
    if not m:
        raise ConfigError(f"coral: group_regex {pattern!r} does not match {path.name}")
    return m.group(1) if m.groups() else m.group(0)
