"""Stem datasets: ``<root>/<split>/<track>/{mixture,<source>...}.wav`` folders.

The layout covers the chorale data set (``<root>/<split>/<piece>__r<k>/{mixture,soprano,alto,
tenor,bass}.wav``), MUSDB18-HQ in wav form (``train/<track>/{mixture,vocals,drums,bass,
other}.wav``) and any user folder of stems. A stem may also be ``.flac``.

Audio is decoded with :func:`wb.audio.load`, resampled to the dataset rate and converted to the
dataset channel count once, then kept in memory or, with a ``cache_dir``, in the spine's
memory-mapped cache (:class:`wb.training.audio_cache.AudioCache`, keyed by every file's path,
size and modification time, the rate and the channel count), so epochs and later runs never
re-decode audio. ``train`` and
``segments`` datasets decode every track when built (a bad file fails at once); with a large
data set give a ``cache_dir`` so the arrays live in the page cache rather than in RAM.

Three modes:

* ``"train"``: random fixed-length segments (a random track, then a random offset), per-source
  random gain in dB (and optional left/right swap for stereo); the mixture is recomputed as the
  sum of the augmented sources. Item ``i`` of epoch ``e`` is drawn from a generator seeded with
  ``(seed, e * len + i)``, so a run is reproducible and a resumed run draws the same data.
* ``"segments"``: deterministic non-overlapping segments of every track (validation), the
  mixture read from ``mixture.wav``; with ``max_segments_per_track`` the kept segments are
  spread evenly over the track.
* ``"full"``: whole tracks (evaluation), the mixture read from ``mixture.wav``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from wb import audio
from wb.errors import ConfigError, WbError
from wb.progress import progress

MIXTURE = "mixture"
EXTENSIONS = (".wav", ".flac")
MODES = ("train", "segments", "full")


@dataclass(frozen=True)
class Track:
    """One track folder: ``name`` and the path of every stem (``mixture`` included)."""

    name: str
    folder: Path
    files: dict[str, Path]


def _find_stem(folder: Path, name: str) -> Path | None:
    for ext in EXTENSIONS:
        p = folder / f"{name}{ext}"
        if p.is_file():
            return p
    return None


def discover_sources(root: str | os.PathLike, split: str) -> list[str]:
    """Source names of the first track of ``root/split`` (every stem but the mixture, sorted).

    Useful for user stem folders; recipes should list their sources explicitly (order matters).

    Raises:
        WbError: missing or empty split, or a first track without stems.
    """
    tracks = _track_folders(Path(root), split)
    names = sorted(
        p.stem for p in tracks[0].iterdir() if p.suffix.lower() in EXTENSIONS and p.stem != MIXTURE
    )
    if not names:
        raise WbError(f"{tracks[0]}: no source stems found next to the mixture")
    return names


def _track_folders(root: Path, split: str) -> list[Path]:
    folder = root / split
    if not folder.is_dir():
        raise WbError(f"{folder}: split folder not found (expected {root}/{split}/<track>/*.wav)")
    tracks = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not tracks:
        raise WbError(f"{folder}: split is empty (no track folders)")
    return tracks


def find_tracks(
    root: str | os.PathLike, split: str, sources: Sequence[str], need_mixture: bool = True
) -> list[Track]:
    """List and validate the track folders of a split.

    Args:
        root: data set root.
        split: split folder name (``train``, ``valid``, ``test``, ...).
        sources: stem names every track must have.
        need_mixture: require ``mixture.wav`` too (``False``: listed in ``files`` only where
            present).

    Returns:
        Tracks sorted by name.

    Raises:
        WbError: missing/empty split, or a track missing a stem (the message names the track
            and the missing stems).
    """
    if not sources:
        raise ConfigError("no source names given")
    wanted = ([MIXTURE] if need_mixture else []) + list(sources)
    out = []
    for folder in _track_folders(Path(root), split):
        files = {name: _find_stem(folder, name) for name in wanted}
        missing = [name for name, p in files.items() if p is None]
        if missing:
            raise WbError(f"{folder}: track is missing {', '.join(m + '.wav' for m in missing)}")
        if not need_mixture and (mix := _find_stem(folder, MIXTURE)) is not None:
            files[MIXTURE] = mix
        out.append(Track(folder.name, folder, files))  # type: ignore[arg-type]
    return out


def check_groups(
    sources: Sequence[str], groups: Mapping[str, Sequence[str]] | None
) -> dict[str, list[str]]:
    """``{source: [stem, ...]}``: the stems summed into each model source (a source without a
    group is its own stem), e.g. ``{"accompaniment": ["drums", "bass", "other"]}`` for a
    vocals/accompaniment model on 4-stem data.

    Raises:
        ConfigError: a group for a name that is not a source, an empty group, or a stem in
            two groups.
    """
    groups = {str(k): [str(x) for x in v] for k, v in (groups or {}).items()}
    unknown = sorted(set(groups) - set(sources))
    if unknown:
        raise ConfigError(
            f"data.groups: {', '.join(unknown)} not among the sources {list(sources)}"
        )
    out = {s: groups.get(s, [s]) for s in sources}
    stems = [x for v in out.values() for x in v]
    if any(not v for v in out.values()) or len(stems) != len(set(stems)):
        raise ConfigError(f"data.groups: every source needs its own stems, got {out}")
    return out


class _StemStore:
    """Decoded stems of a split: the spine's memory-mapped
    :class:`~wb.training.audio_cache.AudioCache` when ``cache_dir`` is given (built once for
    every stem of every track, reused by later runs), else arrays decoded into memory
    (kept only when ``memory``).
    """

    def __init__(
        self,
        tracks: Sequence[Track],
        names: Sequence[str],
        sample_rate: int,
        channels: int,
        cache_dir: str | os.PathLike | None,
        memory: bool,
        quiet: bool | None,
    ) -> None:
        self.sample_rate, self.channels, self.memory = int(sample_rate), int(channels), memory
        self._mem: dict[Path, np.ndarray] = {}
        self._cache = None
        if cache_dir:
            from wb.training.audio_cache import AudioCache

            paths = [t.files[n] for t in tracks for n in names if n in t.files]
            self._pos = {Path(p): i for i, p in enumerate(paths)}
            self._cache = AudioCache(
                paths, self.sample_rate, cache_dir, mono=False, channels=self.channels,
                progress=not quiet,
            )  # fmt: skip

    def get(self, path: Path) -> np.ndarray:
        """The stem as float32 ``(channels, samples)`` at the store's rate.

        Raises:
            AudioError: the file cannot be decoded (see :func:`wb.audio.load`).
        """
        if self._cache is not None:
            return self._cache[self._pos[Path(path)]]
        if path in self._mem:
            return self._mem[path]
        x, _ = audio.load(path, sample_rate=self.sample_rate, channels=self.channels)
        arr = x.numpy().astype(np.float32, copy=False)
        if self.memory:
            self._mem[path] = arr
        return arr


class StemsDataset(Dataset):
    """Mixture/stems pairs from a ``<root>/<split>/<track>/`` folder.

    Args:
        root: data set root.
        split: split folder name.
        sources: model source names, in model output order.
        sample_rate: Hz; stems are resampled to it.
        channels: 1 (mono downmix) or 2 (stereo; mono stems are duplicated).
        mode: ``"train"`` (random augmented segments), ``"segments"`` (fixed segments) or
            ``"full"`` (whole tracks).
        segment: segment length in seconds (``train`` and ``segments`` modes).
        samples_per_epoch: items per epoch in ``train`` mode.
        gain_db: ``(low, high)`` range of the per-source random gain in dB (``train`` mode).
        swap_channels: randomly swap left/right per source (stereo ``train`` mode).
        max_segments_per_track: cap on segments per track in ``segments`` mode, spread evenly
            over the track (``None``: all).
        cache_dir: decoded-audio cache folder (:class:`wb.training.audio_cache.AudioCache`;
            ``None``: memory only).
        seed: base seed of the ``train`` mode's per-item generators.
        quiet: no progress bar while decoding (``None`` follows ``WB_QUIET``).
        groups: stems summed into a source (:func:`check_groups`), e.g. ``{"accompaniment":
            ["drums", "bass", "other"]}``; default: each source is the stem of its name.
        remix: ``train`` mode: every source from its own random track and offset (Demucs'
            remixing across tracks, Défossez et al. 2019) instead of one track for all.
        flip_polarity: ``train`` mode: multiply each source by a random sign.
        proportional: ``train`` mode: draw tracks with probability proportional to their
            length (every segment of the data equally likely) instead of uniformly.

    The mixture of ``segments``/``full`` items is the track's ``mixture.wav`` when it has
    one, else the sum of the sources' stems (stems in no source are then not in it); in
    ``train`` mode it is always the sum of the augmented sources.

    Items:
        ``train``: item ``(i, epoch)`` (from :class:`wb.training.sampler.EpochSampler`; a bare
        ``i`` means epoch 0) draws segment ``epoch * samples_per_epoch + i`` of the seeded
        stream. ``train``/``segments``: ``(mixture, sources)`` float32 tensors
        ``(channels, samples)`` and ``(n_sources, channels, samples)``. ``full``: a dict
        with ``name``, ``mixture`` and ``sources`` of the whole track.

    Raises:
        WbError: missing/empty split or a track missing a stem. ConfigError: bad mode,
            segment, gain range or groups.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        sources: Sequence[str],
        sample_rate: int,
        channels: int = 1,
        mode: str = "train",
        segment: float = 4.0,
        samples_per_epoch: int = 1000,
        gain_db: Sequence[float] = (-6.0, 3.0),
        swap_channels: bool = True,
        max_segments_per_track: int | None = None,
        cache_dir: str | os.PathLike | None = None,
        seed: int = 0,
        quiet: bool | None = None,
        groups: Mapping[str, Sequence[str]] | None = None,
        remix: bool = False,
        flip_polarity: bool = False,
        proportional: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"dataset mode {mode!r} unknown (choose from {', '.join(MODES)})")
        if mode != "full" and not segment > 0:
            raise ConfigError(f"segment must be positive seconds, got {segment}")
        gain = tuple(float(g) for g in gain_db)
        if len(gain) != 2 or gain[0] > gain[1]:
            raise ConfigError(f"gain_db must be [low, high] in dB, got {list(gain_db)}")
        self.root, self.split, self.mode = Path(root), split, mode
        self.sources = list(sources)
        self.groups = check_groups(self.sources, groups)
        self.stem_names = [x for s in self.sources for x in self.groups[s]]
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self.segment_samples = (
            int(round(float(segment) * self.sample_rate)) if mode != "full" else 0
        )
        self.samples_per_epoch = int(samples_per_epoch)
        self.gain_db = gain
        self.swap_channels = bool(swap_channels)
        self.remix, self.flip_polarity = bool(remix), bool(flip_polarity)
        self.proportional = bool(proportional)
        self.seed = int(seed)
        self.tracks = find_tracks(root, split, self.stem_names, need_mixture=False)
        # train/segments: decode every track now (errors surface at once, epochs read RAM or
        # the memory-mapped cache, DataLoader workers share the arrays); full: one at a time
        self.cache = _StemStore(
            self.tracks, self._names(), self.sample_rate, self.channels, cache_dir,
            memory=mode != "full", quiet=quiet,
        )  # fmt: skip
        self._lengths: dict[int, int] = {}
        self._index: list[tuple[int, int]] = []
        if mode != "full":
            for i in progress(
                range(len(self.tracks)), desc=f"loading {split}", unit="track", quiet=quiet
            ):
                self.track_length(i)
        if mode == "segments":
            self._index = self._segment_index(max_segments_per_track)
        self._weights = None
        if mode == "train" and self.proportional:
            lengths = np.array([self.track_length(i) for i in range(len(self.tracks))], float)
            self._weights = lengths / lengths.sum()

    # -- helpers -----------------------------------------------------------------------------
    def _names(self) -> list[str]:
        """Files read per track: the stems, and the mixture outside ``train`` mode."""
        return self.stem_names if self.mode == "train" else [MIXTURE, *self.stem_names]

    def _stems(self, track: Track, names: Sequence[str]) -> list[np.ndarray]:
        return [self.cache.get(track.files[n]) for n in names if n in track.files]

    def track_length(self, i: int) -> int:
        """Samples (at the dataset rate) of track ``i``: the shortest of its files.

        Raises:
            AudioError: a stem cannot be decoded.
        """
        if i not in self._lengths:
            arrays = self._stems(self.tracks[i], self._names())
            self._lengths[i] = min(a.shape[-1] for a in arrays)
        return self._lengths[i]

    def _segment_index(self, cap: int | None) -> list[tuple[int, int]]:
        """``(track, offset)`` of the fixed segments: the track's non-overlapping segments,
        or ``cap`` of them spread evenly from its first to its last (not the first ``cap``)."""
        index = []
        for i in range(len(self.tracks)):
            n = max(1, self.track_length(i) // self.segment_samples)
            picks = range(n)
            if cap is not None and int(cap) < n:
                picks = np.linspace(0, n - 1, max(1, int(cap))).round().astype(int).tolist()
            index += [(i, int(k) * self.segment_samples) for k in picks]
        return index

    @staticmethod
    def _crop(arr: np.ndarray, offset: int, length: int) -> np.ndarray:
        out = np.asarray(arr[:, offset : offset + length], dtype=np.float32)
        if out.shape[-1] < length:
            out = np.pad(out, ((0, 0), (0, length - out.shape[-1])))
        return out

    def _source(self, arrays: Mapping[str, np.ndarray], source: str, offset: int,
                length: int) -> np.ndarray:  # fmt: skip
        """``(channels, length)``: the sum of ``source``'s stems from ``offset``."""
        parts = [self._crop(arrays[x], offset, length) for x in self.groups[source]]
        return parts[0] if len(parts) == 1 else np.sum(parts, axis=0, dtype=np.float32)

    def _arrays(self, track: Track, names: Sequence[str]) -> dict[str, np.ndarray]:
        """The decoded files of ``track`` among ``names`` (each decoded once per call)."""
        return {n: self.cache.get(track.files[n]) for n in names if n in track.files}

    def _pair(self, i: int, offset: int, length: int | None = None):
        """``(mixture, sources)`` of track ``i`` from ``offset`` (``length=None``: to the
        end of its shortest file)."""
        arrays = self._arrays(self.tracks[i], self._names())
        if length is None:
            length = self._lengths.setdefault(i, min(a.shape[-1] for a in arrays.values()))
        srcs = np.stack([self._source(arrays, s, offset, length) for s in self.sources])
        has_mix = MIXTURE in arrays
        mix = self._crop(arrays[MIXTURE], offset, length) if has_mix else srcs.sum(axis=0)
        return mix, srcs

    # -- Dataset -----------------------------------------------------------------------------
    def __len__(self) -> int:
        if self.mode == "train":
            return self.samples_per_epoch
        if self.mode == "segments":
            return len(self._index)
        return len(self.tracks)

    def __getitem__(self, index):
        if self.mode == "train":  # (i, epoch) from wb.training.sampler.EpochSampler
            i, epoch = index if isinstance(index, tuple) else (index, 0)
            return self._train_item(int(epoch) * self.samples_per_epoch + int(i))
        if self.mode == "segments":
            i, offset = self._index[index]
            mix, srcs = self._pair(i, offset, self.segment_samples)
            return torch.from_numpy(mix), torch.from_numpy(srcs)
        mix, srcs = self._pair(index, 0)
        return {
            "name": self.tracks[index].name,
            "mixture": torch.from_numpy(mix),
            "sources": torch.from_numpy(srcs),
        }

    def _draw(self, rng: np.random.Generator) -> tuple[int, int]:
        """A random ``(track, offset)`` of a training segment."""
        n = len(self.tracks)
        i = int(rng.choice(n, p=self._weights) if self._weights is not None else rng.integers(n))
        offset = int(rng.integers(0, max(1, self.track_length(i) - self.segment_samples + 1)))
        return i, offset

    def _train_item(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        n = self.segment_samples
        if self.remix:  # each source from its own track and offset
            draws = [self._draw(rng) for _ in self.sources]
        else:
            draws = [self._draw(rng)] * len(self.sources)
        srcs = np.stack([
            self._source(self._arrays(self.tracks[i], self.groups[s]), s, o, n)
            for s, (i, o) in zip(self.sources, draws, strict=True)
        ])  # fmt: skip
        gains_db = rng.uniform(self.gain_db[0], self.gain_db[1], size=len(self.sources))
        srcs *= (10.0 ** (gains_db / 20.0)).astype(np.float32)[:, None, None]
        if self.swap_channels and self.channels == 2:
            flip = rng.random(len(self.sources)) < 0.5
            srcs[flip] = srcs[flip][:, ::-1]
        if self.flip_polarity:
            srcs *= rng.choice(np.array([-1.0, 1.0], np.float32), size=len(self.sources))[
                :, None, None
            ]
        mixture = srcs.sum(axis=0)
        return torch.from_numpy(mixture), torch.from_numpy(np.ascontiguousarray(srcs))
