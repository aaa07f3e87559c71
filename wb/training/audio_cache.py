"""The one decoded-audio cache of the training spine: one float32 memory-mapped array per
(file list, rate, channel policy), used by classification clips and separation stems alike.

Decoding and resampling thousands of files every epoch dominates small-model training on a
CPU. :class:`AudioCache` decodes each file once with :func:`wb.audio.load` (resampling and
channel policy included), appends the samples to one flat little-endian float32 file, and keeps
an index (JSON) of per-clip offsets plus the fingerprint of the inputs: the ordered file list
with each file's size and modification time. Opening the cache again with the same inputs maps
the array read-only and decodes nothing; any change to the list, a size or an mtime rebuilds
it. Builds are atomic (data written to a temporary file and renamed, then the index renamed,
which is the commit point) and serialised between processes with a lock file, so a crash or a
concurrent reader never sees half a cache.

Files in ``cache_dir`` for a cache named ``<stem>``::

    <stem>.json          index: version, rate, channel policy, files, offsets, channels, data
    <stem>.<id>.f32      samples of every clip, concatenated (channel-major per clip)
    <stem>.lock          build lock
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import uuid
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

import wb.audio
from wb.errors import WbError
from wb.progress import progress
from wb.runs import write_json

try:  # POSIX advisory lock; without it concurrent builds are merely wasteful
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

VERSION = 1


def _fingerprint(paths: list[Path]) -> list[list]:
    out = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            raise WbError(f"{p}: no such file (cannot cache it)") from None
        out.append([os.path.abspath(p), int(st.st_size), int(st.st_mtime_ns)])
    return out


def _decode(path: Path, sample_rate: int, channels: int | None) -> np.ndarray:
    """Decode one file to float32 ``(channels, samples)`` at ``sample_rate``."""
    audio, _ = wb.audio.load(path, sample_rate=sample_rate, channels=channels)
    return np.ascontiguousarray(audio.numpy(), dtype="<f4")


@contextmanager
def _locked(path: Path):
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


class AudioCache:
    """Random access to decoded, resampled clips backed by one memory-mapped float32 file.

    Args:
        paths: audio files (anything with a ``path`` attribute, such as a dataset's clip
            records, is taken by that path); item ``i`` of the cache is entry ``i``.
        sample_rate: rate in Hz every clip is resampled to.
        cache_dir: folder for the cache files (created).
        mono: downmix to mono (items are ``(samples,)``); ``False``: items are ``(channels,
            samples)`` with ``channels`` channels.
        channels: with ``mono=False``: ``None`` keeps each file's channels, 1 or 2 converts
            (:func:`wb.audio.convert_channels`: downmix, or mono duplicated to stereo).
        name: cache name, e.g. the dataset name; the files are
            ``<name>-<rate>hz-<mono|multi|1ch|2ch>``. ``None`` derives a name from a hash of
            the path list.
        progress: show a progress bar while building (also silenced by ``WB_QUIET``).

    Raises:
        WbError: a listed file is missing. AudioError (a WbError) from :func:`wb.audio.load`
            when a file cannot be decoded; the previous cache, if any, is left untouched.
    """

    def __init__(
        self,
        paths: Iterable,
        sample_rate: int,
        cache_dir: str | os.PathLike,
        mono: bool = True,
        *,
        channels: int | None = None,
        name: str | None = None,
        progress: bool = True,
    ) -> None:
        self.paths = [Path(getattr(p, "path", p)) for p in paths]
        self.sample_rate = int(sample_rate)
        self.mono = bool(mono)
        self.convert = 1 if self.mono else (None if channels is None else int(channels))
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        kind = "mono" if self.mono else ("multi" if self.convert is None else f"{self.convert}ch")
        if name is None:
            resolved = "\n".join(os.path.abspath(p) for p in self.paths)
            digest = hashlib.sha1(resolved.encode()).hexdigest()[:12]
            name = f"audio-{digest}"
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
        self.stem = f"{safe}-{self.sample_rate}hz-{kind}"
        self.index_path = self.cache_dir / f"{self.stem}.json"
        self._progress = progress
        self.built = False  # True when this instance decoded the files
        fingerprint = _fingerprint(self.paths)
        index = self._read_index(fingerprint)
        if index is None:
            with _locked(self.cache_dir / f"{self.stem}.lock"):
                index = self._read_index(fingerprint)  # another process may have built it
                if index is None:
                    index = self._build(fingerprint)
                    self.built = True
        self._index = index
        self.data_path = self.cache_dir / index["data"]
        self.offsets = np.asarray(index["offsets"], dtype=np.int64)
        self.channels = np.asarray(index["channels"], dtype=np.int64)
        self._data: np.ndarray | None = None
        _ = self.data  # map now, so a later rebuild elsewhere cannot pull the file away

    # -- index ---------------------------------------------------------------------------

    def _read_index(self, fingerprint: list[list]) -> dict | None:
        """The stored index when it is complete and matches the inputs, else ``None``."""
        try:
            index = json.loads(self.index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        try:
            ok = (
                index["version"] == VERSION
                and index["sample_rate"] == self.sample_rate
                and index["mono"] == self.mono
                and index.get("convert", 1 if self.mono else None) == self.convert
                and index["files"] == fingerprint
                and len(index["offsets"]) == len(fingerprint) + 1
            )
            data = self.cache_dir / index["data"]
            ok = ok and data.is_file() and data.stat().st_size == 4 * index["offsets"][-1]
        except (KeyError, TypeError, OSError):
            return None
        return index if ok else None

    def _build(self, fingerprint: list[list]) -> dict:
        data_name = f"{self.stem}.{uuid.uuid4().hex[:12]}.f32"
        fd, tmp = tempfile.mkstemp(prefix=f".{self.stem}.", suffix=".tmp", dir=self.cache_dir)
        offsets, channels = [0], []
        try:
            with os.fdopen(fd, "wb") as f:
                bar = progress(
                    self.paths,
                    desc=f"caching {self.stem}",
                    total=len(self.paths),
                    unit="file",
                    quiet=None if self._progress else True,
                )
                for p in bar:
                    arr = _decode(p, self.sample_rate, self.convert)
                    f.write(arr.tobytes())
                    channels.append(int(arr.shape[0]))
                    offsets.append(offsets[-1] + int(arr.size))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.cache_dir / data_name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        index = {
            "version": VERSION,
            "sample_rate": self.sample_rate,
            "mono": self.mono,
            "convert": self.convert,
            "data": data_name,
            "files": fingerprint,
            "offsets": offsets,
            "channels": channels,
        }
        try:
            write_json(self.index_path, index)  # atomic: the commit point
        except BaseException:
            (self.cache_dir / data_name).unlink(missing_ok=True)
            raise
        for old in self.cache_dir.glob(f"{self.stem}.*.f32"):
            if old.name != data_name:
                old.unlink(missing_ok=True)
        return index

    # -- access --------------------------------------------------------------------------

    @property
    def data(self) -> np.ndarray:
        """All samples, a read-only float32 memmap ``(total,)`` (opened on first use)."""
        if self._data is None:
            if self.offsets[-1] == 0:
                self._data = np.zeros(0, dtype="<f4")
            else:
                self._data = np.memmap(self.data_path, dtype="<f4", mode="r")
        return self._data

    @property
    def lengths(self) -> np.ndarray:
        """Samples per channel of every clip, int64 ``(len(self),)``."""
        return np.diff(self.offsets) // np.maximum(self.channels, 1)

    @property
    def durations(self) -> np.ndarray:
        """Clip durations in seconds, float64 ``(len(self),)``."""
        return self.lengths / self.sample_rate

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        """Clip ``i`` as a zero-copy, read-only view into the memmap.

        Returns:
            float32 ``(samples,)`` when ``mono``, else ``(channels, samples)``, at
            :attr:`sample_rate`. Copy it before modifying in place.

        Raises:
            IndexError: ``i`` out of range.
        """
        n = len(self.paths)
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"cache index {i} out of range for {n} clips")
        view = self.data[self.offsets[i] : self.offsets[i + 1]]
        if self.mono:
            return view
        return view.reshape(int(self.channels[i]), -1)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_data"] = None  # re-map in the worker instead of pickling the samples
        return state

    def __repr__(self) -> str:
        return (
            f"AudioCache({len(self)} clips, {self.sample_rate} Hz, "
            f"{'mono' if self.mono else 'multi'}, {self.offsets[-1] * 4 / 1e6:.1f} MB at "
            f"{self.data_path})"
        )
