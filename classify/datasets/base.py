"""Dataset records shared by every adapter: clips, splits, the dataset, and split helpers.

A dataset adapter reads an official on-disk layout and returns a :class:`ClipDataset`: a list
of :class:`Clip` records (file, label, official fold tag, leakage group) plus named split
protocols. Splits are lists of :class:`Split` index tuples, always deterministic, with train and
test disjoint. Whenever a protocol promises it, no leakage group (speaker, Freesound source,
recording deployment...) straddles train and test.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wb.errors import WbError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".m4a", ".opus")


class DatasetNotFound(WbError):
    """The dataset folder is missing or incomplete (the message says what was expected)."""


@dataclass(frozen=True)
class Clip:
    """One labelled audio file.

    Attributes:
        path: the audio file.
        label: index into :attr:`ClipDataset.classes`.
        fold: official fold / split tag, e.g. ``"1"``..``"5"`` (ESC-50), ``"fold3"``
            (UrbanSound8K), ``"test"`` / ``"train"`` (FSDD official split).
        group: leakage group: speaker, recording deployment, Freesound source id, ...
            Clips of one group never straddle train and test in a grouped protocol.
    """

    path: Path
    label: int
    fold: str
    group: str


@dataclass(frozen=True)
class Split:
    """One train/test partition, as indices into :attr:`ClipDataset.clips`.

    Attributes:
        name: e.g. ``"fold1"``, ``"official"``, ``"speaker=george"``.
        train: training clip indices (sorted).
        test: test clip indices (sorted), disjoint from ``train``.
        validate: the protocol's own validation indices (sorted), disjoint from both, or
            empty when the protocol has none (then carve one with :func:`validation_split`).
            Only AudioMNIST's paper splits define one.
        extra_train: indices of extra training-only clips (e.g. synthetic speech added with
            the ``extra_train`` config key): they join the training set (and the statistics
            fitted on it) after the validation set has been carved from ``train``, so they are
            never validated or tested on.
    """

    name: str
    train: tuple[int, ...]
    test: tuple[int, ...]
    validate: tuple[int, ...] = ()
    extra_train: tuple[int, ...] = ()


SplitFn = Callable[["ClipDataset"], list[Split]]


def fold_tag_splits(dataset: ClipDataset) -> list[Split]:
    """One split per distinct :attr:`Clip.fold` tag: test = that fold, train = all others.

    Split names are ``"fold<tag>"`` (or the tag itself when it already starts with ``fold``);
    tags are ordered numerically when they are all integers, else alphabetically.
    """
    tags = sorted({c.fold for c in dataset.clips}, key=_natural_key)
    out = []
    for tag in tags:
        test = tuple(i for i, c in enumerate(dataset.clips) if c.fold == tag)
        train = tuple(i for i, c in enumerate(dataset.clips) if c.fold != tag)
        name = tag if tag.startswith("fold") else f"fold{tag}"
        out.append(Split(name, train, test))
    return out


@dataclass
class ClipDataset:
    """A labelled clip collection with named, deterministic split protocols.

    Attributes:
        name: registry name, e.g. ``"esc50"``.
        classes: class names; :attr:`Clip.label` indexes this list.
        clips: the clips, in a deterministic order (sorted by the adapter).
        sample_rate: recommended analysis rate in Hz.
        clip_seconds: recommended fixed duration in seconds for the length policy.
        protocols: names of the available protocols; the first is the default unless
            ``default_protocol`` says otherwise.
        default_protocol: the protocol :meth:`splits` uses when given ``None``.
        root: the dataset folder it was read from (``None`` for in-memory datasets).
        citation: the dataset's reference.
        notes: extra hint appended to "unknown protocol" errors.
        split_fns: protocol name -> function computing its splits. When empty, a single
            protocol ``"folds"`` is derived from the clips' fold tags
            (:func:`fold_tag_splits`), so a hand-built dataset works out of the box.
    """

    name: str
    classes: list[str]
    clips: list[Clip]
    sample_rate: int
    clip_seconds: float
    protocols: tuple[str, ...] = ()
    default_protocol: str | None = None
    root: Path | None = None
    citation: str = ""
    notes: str = ""
    split_fns: dict[str, SplitFn] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.split_fns:
            self.split_fns = {"folds": fold_tag_splits}
        if not self.protocols:
            self.protocols = tuple(self.split_fns)
        if self.default_protocol is None:
            self.default_protocol = self.protocols[0]
        n = len(self.classes)
        for c in self.clips:
            if not 0 <= c.label < n:
                raise WbError(f"{self.name}: {c.path}: label {c.label} outside 0..{n - 1}")

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def labels(self) -> np.ndarray:
        """Labels of all clips, int64 ``(len(clips),)``."""
        return np.fromiter((c.label for c in self.clips), dtype=np.int64, count=len(self.clips))

    @property
    def groups(self) -> list[str]:
        """Leakage group of every clip, in clip order."""
        return [c.group for c in self.clips]

    @property
    def paths(self) -> list[Path]:
        """Audio file of every clip, in clip order."""
        return [c.path for c in self.clips]

    def class_counts(self, indices: Iterable[int] | None = None) -> dict[str, int]:
        """Clips per class name (over ``indices`` or all clips), in class order."""
        idx = range(len(self.clips)) if indices is None else indices
        counts = Counter(self.clips[i].label for i in idx)
        return {name: counts.get(k, 0) for k, name in enumerate(self.classes)}

    def splits(self, protocol: str | None = None) -> list[Split]:
        """Return the splits of a protocol.

        Args:
            protocol: one of :attr:`protocols`; ``None`` gives :attr:`default_protocol`.

        Returns:
            list of :class:`Split`, in a fixed order; train, validate and test are disjoint.

        Raises:
            WbError: unknown protocol, or a split that came out empty or overlapping (e.g.
                a fold with no clips because files are missing).
        """
        p = protocol or self.default_protocol
        if p not in self.split_fns:
            hint = f"; {self.notes}" if self.notes else ""
            raise WbError(
                f"{self.name}: unknown protocol {p!r} (choose from {', '.join(self.protocols)})"
                f"{hint}"
            )
        out = self.split_fns[p](self)
        for s in out:
            check_split(self, s)
        return out

    def summary(self) -> str:
        """One line: name, clip and class counts, rate, duration and protocols."""
        return (
            f"{self.name}: {len(self.clips)} clips, {len(self.classes)} classes, "
            f"{len(set(self.groups))} groups, {self.sample_rate} Hz, {self.clip_seconds:g} s, "
            f"protocols {', '.join(self.protocols)} (default {self.default_protocol})"
        )


def check_split(dataset: ClipDataset, split: Split) -> None:
    """Validate a split: indices in range, no duplicates, parts disjoint, train and test non-empty.

    Raises:
        WbError: naming the dataset and split.
    """
    n = len(dataset.clips)
    where = f"{dataset.name}: split {split.name}"
    parts = {
        "train": split.train, "test": split.test, "validate": split.validate,
        "extra_train": split.extra_train,
    }  # fmt: skip
    seen: set[int] = set()
    for part, idx in parts.items():
        s = set(idx)
        if len(s) != len(idx):
            raise WbError(f"{where}: duplicate indices in {part}")
        if idx and (min(idx) < 0 or max(idx) >= n):
            raise WbError(f"{where}: {part} index outside 0..{n - 1}")
        if seen & s:
            raise WbError(f"{where}: {part} overlaps another part")
        seen |= s
    if not split.train or not split.test:
        empty = "train" if not split.train else "test"
        raise WbError(f"{where}: {empty} set is empty (files missing?)")


def straddling_groups(dataset: ClipDataset, split: Split) -> set[str]:
    """Groups with clips on both sides of a split (train+validate vs test); empty when clean."""
    fit = {dataset.clips[i].group for i in (*split.train, *split.validate)}
    return fit & {dataset.clips[i].group for i in split.test}


# --------------------------------------------------------------------------------------------
# Deterministic group-aware splitting


def stratified_group_kfold(
    labels: Sequence[int], groups: Sequence[str], k: int, seed: int = 0
) -> np.ndarray:
    """Assign every item to one of ``k`` folds, keeping groups whole and classes balanced.

    Greedy algorithm of scikit-learn's ``StratifiedGroupKFold(shuffle=True)``: groups are
    shuffled with ``seed``, ordered by how concentrated their label distribution is, and each
    goes to the fold that keeps the per-class fold proportions most even (ties: the fold with
    fewest items, then the lowest index). Deterministic for a given input and seed.

    Args:
        labels: class index per item, length ``n``.
        groups: leakage group per item, length ``n``.
        k: number of folds (>= 2).
        seed: shuffling seed.

    Returns:
        int64 array ``(n,)`` of fold indices in ``0..k-1``; every fold is non-empty.

    Raises:
        WbError: ``k < 2``, lengths differ, or fewer than ``k`` groups.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(groups):
        raise WbError(f"stratified_group_kfold: {len(labels)} labels but {len(groups)} groups")
    if k < 2:
        raise WbError(f"the number of folds must be at least 2, got {k}")
    names = sorted(set(groups))
    if len(names) < k:
        raise WbError(f"cannot make {k} group-disjoint folds from only {len(names)} groups")
    gid = {g: i for i, g in enumerate(names)}
    item_group = np.fromiter((gid[g] for g in groups), dtype=np.int64, count=len(groups))
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    counts = np.zeros((len(names), n_classes), dtype=np.float64)
    np.add.at(counts, (item_group, labels), 1.0)
    totals = np.maximum(counts.sum(axis=0), 1.0)

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(names))
    order = order[np.argsort(-np.std(counts[order], axis=1), kind="stable")]

    fold_counts = np.zeros((k, n_classes), dtype=np.float64)
    group_fold = np.empty(len(names), dtype=np.int64)
    eye = np.eye(k)[:, :, None]
    for g in order:
        cand = fold_counts[None] + eye * counts[g][None, None, :]  # (k candidates, k, C)
        cost = np.std(cand / totals, axis=1).mean(axis=1)
        sizes = fold_counts.sum(axis=1)
        best = int(np.lexsort((np.arange(k), sizes, np.round(cost, 12)))[0])
        fold_counts[best] += counts[g]
        group_fold[g] = best
    # Guarantee non-empty folds (possible with very few, very unequal groups).
    for f in range(k):
        if not (group_fold == f).any():
            sizes = counts.sum(axis=1)
            donors = [g for g in np.argsort(sizes) if (group_fold == group_fold[g]).sum() > 1]
            group_fold[donors[0]] = f
    return group_fold[item_group]


def validation_split(
    dataset: ClipDataset, train_indices: Iterable[int], fraction: float = 0.1, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Carve a validation set out of training indices, keeping leakage groups whole.

    Groups (:attr:`Clip.group`) are visited in a seeded random order; a group goes to
    validation when that moves the validation class counts closer to ``fraction`` of each
    class's training count (L1 distance), so the result is stratified by label as far as the
    groups allow and no group straddles the two parts.

    Args:
        dataset: the dataset the indices refer to.
        train_indices: indices into ``dataset.clips``.
        fraction: wanted validation share of the training clips, in [0, 1).
        seed: ordering seed; the same inputs and seed give the same result.

    Returns:
        ``(train, validation)``: sorted index lists, disjoint, together the input. With
        ``fraction == 0`` the validation list is empty.

    Raises:
        WbError: ``fraction`` outside [0, 1), or fewer than two groups to choose from.
    """
    idx = sorted(set(int(i) for i in train_indices))
    if not 0.0 <= fraction < 1.0:
        raise WbError(f"validation fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0 or not idx:
        return idx, []
    by_group: dict[str, list[int]] = defaultdict(list)
    for i in idx:
        by_group[dataset.clips[i].group].append(i)
    names = sorted(by_group)
    if len(names) < 2:
        raise WbError(
            f"{dataset.name}: cannot carve a validation set: all {len(idx)} training clips "
            f"belong to one group ({names[0]!r})"
        )
    n_classes = len(dataset.classes)
    gcounts = np.zeros((len(names), n_classes))
    for g, name in enumerate(names):
        for i in by_group[name]:
            gcounts[g, dataset.clips[i].label] += 1
    target = fraction * gcounts.sum(axis=0)
    val = np.zeros(n_classes)
    chosen: list[int] = []
    order = np.random.default_rng(seed).permutation(len(names))
    for g in order:
        gain = np.abs(target - val).sum() - np.abs(target - val - gcounts[g]).sum()
        if gain > 1e-9:
            chosen.append(int(g))
            val += gcounts[g]
    if not chosen:  # every group overshoots: take the least harmful one
        gains = np.abs(target).sum() - np.abs(target - gcounts).sum(axis=1)
        chosen.append(int(np.argmax(gains)))
    if len(chosen) == len(names):  # never leave training empty
        chosen.pop()
    val_idx = sorted(i for g in chosen for i in by_group[names[g]])
    val_set = set(val_idx)
    return [i for i in idx if i not in val_set], val_idx


# --------------------------------------------------------------------------------------------
# Layout helpers used by the adapters


def _natural_key(s: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s))


def find_root(root: Path, markers: Sequence[str]) -> Path | None:
    """Locate a dataset folder: ``root`` itself, or its only child folder, holding all markers.

    Lets users point ``data_dir`` either at the dataset or at the folder they unpacked the
    official archive into (e.g. ``ESC-50-master/`` inside it).
    """
    root = Path(root)

    def has_all(p: Path) -> bool:
        return all((p / m).exists() for m in markers)

    if has_all(root):
        return root
    if root.is_dir():
        hits = [c for c in sorted(root.iterdir()) if c.is_dir() and has_all(c)]
        if len(hits) == 1:
            return hits[0]
    return None


def read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    """Read a CSV file with a header into dicts, checking that the required columns exist.

    Raises:
        DatasetNotFound: file missing, empty, or lacking columns.
    """
    if not path.is_file():
        raise DatasetNotFound(f"{path}: metadata file not found")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in required if c not in header]
        if missing:
            raise DatasetNotFound(
                f"{path}: missing column(s) {', '.join(missing)} (found {', '.join(header)})"
            )
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    if not rows:
        raise DatasetNotFound(f"{path}: has a header but no rows")
    return rows


def check_files_exist(paths: Sequence[Path], what: str, listed_in: str) -> None:
    """Raise :class:`DatasetNotFound` when any listed audio file is absent (names one)."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DatasetNotFound(
            f"{what}: {len(missing)} of {len(paths)} audio files listed in {listed_in} are "
            f"missing (e.g. {missing[0]})"
        )


def list_audio(folder: Path, recursive: bool = True) -> list[Path]:
    """Audio files (by extension, any case) under ``folder``, sorted; hidden entries skipped."""
    it = folder.rglob("*") if recursive else folder.iterdir()
    out = []
    for p in it:
        rel = p.relative_to(folder).parts
        if any(part.startswith(".") for part in rel):
            continue
        if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file():
            out.append(p)
    return sorted(out, key=lambda p: _natural_key(p.relative_to(folder).as_posix()))


def env_path(name: str) -> Path | None:
    """The path in environment variable ``name``, expanded, or ``None`` when unset/empty."""
    v = os.environ.get(name, "")
    return Path(v).expanduser() if v else None


@dataclass(frozen=True)
class Archive:
    """Where a dataset's official archive lives and how to verify it.

    Attributes:
        url: download address (HTTP(S) or ``file://``).
        filename: name to save it under.
        sha256: expected SHA-256 hex digest, or ``None`` when no trustworthy digest is known
            offline (then the user can pass one, which makes the check mandatory).
        md5: expected MD5 hex digest published by the host, when that is all there is.
        size: expected size in bytes, when known.
        note: provenance of the checksums, shown in documentation.
    """

    url: str
    filename: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    note: str = ""
