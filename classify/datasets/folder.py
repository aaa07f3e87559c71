"""Any folder of labelled audio: ``root/<class_name>/**/*.wav`` (also flac, ogg, mp3, ...).

Classes are the sub-folder names (sorted) that contain audio; hidden entries are skipped.
Protocol ``folds``: deterministic stratified-group k-fold (option ``folds``, default 5;
``seed``, default 0). Leakage groups come from option ``group_regex``: its first capture group
(or the whole match) applied to the file name, e.g. ``r"^([a-z]+)_"`` for files named
``<speaker>_<take>.wav``; by default every file is its own group. A file the regex does not
match is an error, so a typo never silently disables grouping.
"""

from __future__ import annotations

import re
from pathlib import Path

from classify.datasets.base import (
    Clip,
    ClipDataset,
    DatasetNotFound,
    fold_tag_splits,
    list_audio,
    stratified_group_kfold,
)
from wb.errors import ConfigError


def scan(
    root: Path, min_classes: int = 2, what: str = "folder"
) -> tuple[list[str], list[list[Path]]]:
    """Class names and audio files of a ``<class_name>/**/*.wav`` folder.

    Args:
        root: the folder whose sub-folders are the classes.
        min_classes: fewest class folders with audio accepted.
        what: name used at the start of error messages (e.g. ``"extra_train"``).

    Returns:
        ``(classes, files)``: the sorted names of the non-hidden sub-folders that hold audio,
        and for each of them its audio files (:func:`~classify.datasets.base.list_audio`).

    Raises:
        DatasetNotFound: ``root`` missing or fewer than ``min_classes`` class folders with audio.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFound(f"{what}: {root} is not a directory (expected <class>/<file>.wav)")
    classes, files = [], []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        audio = list_audio(d)
        if audio:
            files.append(audio)
            classes.append(d.name)
    if len(classes) < min_classes:
        raise DatasetNotFound(
            f"{what}: {root} needs at least {min_classes} class sub-folder(s) with audio files "
            f"(found {len(classes)}); expected <class_name>/*.wav"
        )
    return classes, files


def load(
    root: Path,
    *,
    folds: int = 5,
    group_regex: str | None = None,
    seed: int = 0,
) -> ClipDataset:
    """Read a ``class_name/file`` folder.

    Args:
        root: the folder whose sub-folders are the classes.
        folds: number of folds (>= 2).
        group_regex: regex giving each file's leakage group (see the module docstring).
        seed: fold-assignment seed.

    Returns:
        :class:`ClipDataset` named ``folder``: folds "1".."k"; protocol ``folds``; 16 kHz and
        5 s recommended (override with the ``sample_rate`` / ``clip_seconds`` options of
        :func:`classify.datasets.get_dataset`).

    Raises:
        DatasetNotFound: ``root`` missing or fewer than two class folders with audio.
        ConfigError: invalid ``group_regex`` or a file it does not match.
    """
    root = Path(root)
    classes, files = scan(root)
    pattern = None
    if group_regex is not None:
        try:
            pattern = re.compile(group_regex)
        except re.error as exc:
            raise ConfigError(f"folder: group_regex {group_regex!r} is invalid ({exc})") from None
    records = []
    for label, paths in enumerate(files):
        for p in paths:
            if pattern is None:
                group = p.relative_to(root).as_posix()
            else:
                m = pattern.search(p.name)
                if not m:
                    raise ConfigError(f"folder: group_regex {group_regex!r} does not match {p}")
                group = m.group(1) if m.groups() else m.group(0)
            records.append((p, label, group))
    assignment = stratified_group_kfold(
        [r[1] for r in records], [r[2] for r in records], folds, seed
    )
    clips = [
        Clip(path=p, label=lab, fold=str(int(f) + 1), group=g)
        for (p, lab, g), f in zip(records, assignment, strict=True)
    ]
    return ClipDataset(
        name="folder",
        classes=classes,
        clips=clips,
        sample_rate=16000,
        clip_seconds=5.0,
        protocols=("folds",),
        root=root,
        split_fns={"folds": fold_tag_splits},
    )
