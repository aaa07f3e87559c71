"""Classification datasets: an explicit registry of adapters over official on-disk layouts.

>>> ds = get_dataset("fsdd", "/data/fsdd")                 # doctest: +SKIP
>>> for split in ds.splits("loso"):                        # doctest: +SKIP
...     train, val = validation_split(ds, split.train)

Registered names (:data:`DATASETS`): ``esc50`` (Piczak 2015), ``urbansound8k`` (Salamon et
al. 2014), ``audiomnist`` (Becker et al. 2018), ``fsdd`` (Jackson et al.), ``coral``
(Williams et al. 2024), ``gtzan`` (Tzanetakis & Cook 2002), ``fma_small`` (Defferrard et
al. 2017) and ``folder`` (any
``class_name/*.wav`` tree).

Options every dataset accepts in :func:`get_dataset`: ``sample_rate`` and ``clip_seconds``
(override the recommendations), ``url`` and ``sha256`` (download source and mandatory
checksum), ``keep_archive`` (keep the downloaded archive after extraction). Other options are
the adapter's own keyword arguments (e.g. ``esc10=True``, ``task="gender"``, ``folds=10``);
an unknown one is a :class:`~wb.errors.ConfigError` listing the accepted ones.

Without ``data_dir`` a dataset lives in ``$WB_DATA_DIR/<name>`` (default
``~/.cache/wb/datasets/<name>``).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classify.datasets import audiomnist, coral, esc50, fma, folder, fsdd, gtzan, urbansound8k
from classify.datasets.base import (
    Archive,
    Clip,
    ClipDataset,
    DatasetNotFound,
    Split,
    check_split,
    straddling_groups,
    stratified_group_kfold,
    validation_split,
)
from wb import names
from wb.errors import ConfigError, WbError
from wb.paths import cache_dir

__all__ = [
    "DATASETS",
    "Archive",
    "Clip",
    "ClipDataset",
    "DatasetInfo",
    "DatasetNotFound",
    "Split",
    "check_split",
    "default_data_root",
    "fetch_dataset",
    "get_dataset",
    "stratified_group_kfold",
    "straddling_groups",
    "train_validation",
    "validation_split",
]


@dataclass(frozen=True)
class DatasetInfo:
    """A registry entry.

    Attributes:
        name: registry name.
        load: ``load(root: Path, **options) -> ClipDataset``.
        summary: one-line description.
        citation: the dataset's reference.
        archive: official archive to download, or ``None`` (``folder``).
    """

    name: str
    load: Callable[..., ClipDataset]
    summary: str
    citation: str
    archive: Archive | None = None


DATASETS: dict[str, DatasetInfo] = {
    "esc50": DatasetInfo(
        "esc50",
        esc50.load,
        "ESC-50 environmental sounds: 2,000 x 5 s, 50 classes, 5 official folds",
        esc50.CITATION,
        esc50.ARCHIVE,
    ),
    "urbansound8k": DatasetInfo(
        "urbansound8k",
        urbansound8k.load,
        "UrbanSound8K: 8,732 urban excerpts <= 4 s, 10 classes, 10 official folds",
        urbansound8k.CITATION,
        urbansound8k.ARCHIVE,
    ),
    "audiomnist": DatasetInfo(
        "audiomnist",
        audiomnist.load,
        "AudioMNIST spoken digits: 30,000 clips, 60 speakers, the paper's speaker splits",
        audiomnist.CITATION,
        audiomnist.ARCHIVE,
    ),
    "fsdd": DatasetInfo(
        "fsdd",
        fsdd.load,
        "Free Spoken Digit Dataset: 3,000 clips at 8 kHz, 6 speakers; official and LOSO",
        fsdd.CITATION,
        fsdd.ARCHIVE,
    ),
    "coral": DatasetInfo(
        "coral",
        coral.load,
        "Coral reef soundscapes (healthy/degraded/restored), deployment-grouped folds",
        coral.CITATION,
        coral.ARCHIVE,
    ),
    "gtzan": DatasetInfo(
        "gtzan",
        gtzan.load,
        "GTZAN genres: 1,000 x 30 s, 10 genres; fault-filtered split (443/197/290) or 10-fold",
        gtzan.CITATION,
        gtzan.ARCHIVE,
    ),
    "fma_small": DatasetInfo(
        "fma_small",
        fma.load,
        "FMA-small: 8,000 x 30 s MP3, 8 genres; official artist-filtered split 6400/800/800",
        fma.CITATION,
        None,
    ),
    "folder": DatasetInfo(
        "folder",
        folder.load,
        "Any class_name/*.wav folder with stratified group k-fold",
        "",
        None,
    ),
}
ALIASES = names.DATASET_ALIASES
COMMON_OPTIONS = ("sample_rate", "clip_seconds", "url", "sha256", "keep_archive")


def _info(name: str) -> DatasetInfo:
    return DATASETS[names.dataset(name)]


def default_data_root() -> Path:
    """Folder holding datasets when no ``data_dir`` is given: ``$WB_DATA_DIR`` or
    ``datasets/`` under the cache root (:func:`wb.paths.cache_root`)."""
    env = os.environ.get("WB_DATA_DIR", "")
    return Path(env).expanduser() if env else cache_dir("datasets")


def _resolve_root(info: DatasetInfo, data_dir: str | os.PathLike | None) -> Path:
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if info.archive is None:
        raise ConfigError(f"{info.name}: needs a data_dir (the folder holding class sub-folders)")
    return default_data_root() / info.name


def _loader_options(info: DatasetInfo, options: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(info.load).parameters
    accepted = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = [k for k in options if k not in accepted]
    if unknown:
        choices = ", ".join([*accepted, *COMMON_OPTIONS])
        raise ConfigError(
            f"{info.name}: unknown option(s) {', '.join(sorted(unknown))} (accepted: {choices})"
        )
    return options


def fetch_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    url: str | None = None,
    sha256: str | None = None,
    keep_archive: bool = False,
    progress: bool = True,
) -> Path:
    """Download and extract a dataset's official archive into ``data_dir``.

    The archive goes to ``downloads/<name>/`` under the cache root (resumable), is verified, and is
    extracted atomically with its single top-level folder stripped, so ``data_dir`` ends up
    holding the official layout (e.g. ``meta/`` and ``audio/`` for ESC-50).

    Args:
        name: registry name.
        data_dir: target folder; must not exist or be empty.
        url: alternative source (mirror or local file); the built-in MD5/size then do not apply.
        sha256: expected SHA-256; makes the check mandatory.
        keep_archive: keep the archive after a successful extraction.
        progress: show progress bars.

    Returns:
        The dataset folder.

    Raises:
        WbError: no known archive, a non-empty ``data_dir``, or download/extract errors.
    """
    from wb.download import download, extract

    info = _info(name)
    root = _resolve_root(info, data_dir)
    if info.archive is None and url is None:
        raise WbError(f"{info.name}: has no downloadable archive")
    arch = info.archive or Archive(url=url or "", filename="")
    src = url or arch.url
    filename = arch.filename if url is None else (src.rsplit("/", 1)[-1].split("?")[0] or "data")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise WbError(
            f"{info.name}: {root} exists but does not hold a complete dataset; move it away or "
            "choose another data_dir before downloading"
        )
    dest = cache_dir("downloads", info.name) / filename
    download(
        src,
        dest,
        sha256 or (arch.sha256 if url is None else None),
        progress,
        md5=arch.md5 if url is None else None,
        size=arch.size if url is None else None,
    )
    extract(dest, root, strip_top=True)
    if not keep_archive:
        dest.unlink(missing_ok=True)
    return root


def get_dataset(
    name: str, data_dir: str | os.PathLike | None = None, download: bool = False, **options: Any
) -> ClipDataset:
    """Load a registered dataset.

    Args:
        name: a key of :data:`DATASETS` (case-insensitive; ``us8k`` is an alias).
        data_dir: the dataset folder; default ``default_data_root() / name``.
        download: fetch and extract the official archive when the folder is missing.
        **options: common options (``sample_rate``, ``clip_seconds``, ``url``, ``sha256``,
            ``keep_archive``) and the adapter's own (see its ``load``).

    Returns:
        The :class:`ClipDataset`.

    Raises:
        WbError: unknown dataset name (the message lists the known ones).
        ConfigError: unknown option.
        DatasetNotFound: the folder is missing or incomplete (the message says what was
            expected and suggests ``--download`` where an archive is known).
    """
    info = _info(name)
    sample_rate = options.pop("sample_rate", None)
    clip_seconds = options.pop("clip_seconds", None)
    url = options.pop("url", None)
    sha256 = options.pop("sha256", None)
    keep_archive = bool(options.pop("keep_archive", False))
    opts = _loader_options(info, options)
    root = _resolve_root(info, data_dir)
    try:
        ds = info.load(root, **opts)
    except DatasetNotFound as exc:
        if not download:
            if info.archive is None:
                raise
            raise DatasetNotFound(f"{exc}; run with --download to fetch it") from None
        if info.archive is None and url is None:
            raise
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise DatasetNotFound(
                f"{exc}; {root} is not empty, so --download will not write into it"
            ) from None
        fetch_dataset(info.name, root, url=url, sha256=sha256, keep_archive=keep_archive)
        ds = info.load(root, **opts)
    if sample_rate is not None:
        if int(sample_rate) <= 0:
            raise ConfigError(f"{info.name}: sample_rate must be positive, got {sample_rate}")
        ds.sample_rate = int(sample_rate)
    if clip_seconds is not None:
        if float(clip_seconds) <= 0:
            raise ConfigError(f"{info.name}: clip_seconds must be positive, got {clip_seconds}")
        ds.clip_seconds = float(clip_seconds)
    return ds


def train_validation(
    dataset: ClipDataset, split: Split, fraction: float = 0.1, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Training and validation indices for a split: the protocol's own validation set when it
    has one (:attr:`Split.validate`, AudioMNIST), else :func:`validation_split` of its train."""
    if split.validate:
        return list(split.train), list(split.validate)
    return validation_split(dataset, split.train, fraction, seed)
