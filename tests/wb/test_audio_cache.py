"""wb.training.audio_cache.AudioCache: the samples of wb.audio.load, reuse, rebuilds."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import wb.audio
from wb.errors import AudioError
from wb.training.audio_cache import AudioCache

FSDD = Path(__file__).resolve().parents[3] / "shared" / "data" / "fsdd" / "recordings"


def _write(path: Path, seconds: float, sr: int, channels: int = 1, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.5, 0.5, (int(sr * seconds), channels)).astype(np.float32)
    sf.write(path, x, sr, subtype="PCM_16")
    return path


@pytest.fixture
def files(tmp_path):
    d = tmp_path / "audio"
    d.mkdir()
    return [
        _write(d / "a.wav", 0.30, 8000, seed=1),
        _write(d / "b.wav", 0.125, 16000, seed=2),
        _write(d / "c.flac", 0.2, 32000, channels=2, seed=3),
        _write(d / "d.wav", 0.05, 48000, seed=4),
    ]


@pytest.fixture
def count_loads(monkeypatch):
    calls: list[Path] = []
    real = wb.audio.load

    def counting(path, *args, **kwargs):
        calls.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(wb.audio, "load", counting)
    return calls


def test_cache_matches_load_and_resample(files, tmp_path):
    cache = AudioCache(files, 16000, tmp_path / "cache", name="toy", progress=False)
    assert len(cache) == 4 and cache.built
    for i, p in enumerate(files):
        ref, sr = wb.audio.load(p, sample_rate=16000, channels=1)
        item = cache[i]
        assert sr == 16000 and item.dtype == np.float32 and item.shape == (ref.shape[1],)
        np.testing.assert_array_equal(item, ref[0].numpy())
        assert np.shares_memory(item, cache.data)  # zero-copy view into the memmap
        assert not item.flags.writeable
    assert isinstance(cache.data, np.memmap)
    np.testing.assert_array_equal(cache.lengths, [4800, 2000, 3200, 800])
    np.testing.assert_allclose(cache.durations, [0.3, 0.125, 0.2, 0.05])
    np.testing.assert_array_equal(cache[-1], cache[3])
    with pytest.raises(IndexError):
        cache[4]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if p.suffix != ".lock") == [
        f"toy-16000hz-mono.{cache.data_path.name.split('.')[1]}.f32",
        "toy-16000hz-mono.json",
    ]


def test_cache_is_reused_without_decoding(files, tmp_path, count_loads):
    first = AudioCache(files, 16000, tmp_path / "cache", name="toy", progress=False)
    assert len(count_loads) == 4
    count_loads.clear()
    again = AudioCache(files, 16000, tmp_path / "cache", name="toy", progress=False)
    assert count_loads == [] and not again.built
    for i in range(len(files)):
        np.testing.assert_array_equal(again[i], first[i])
    # another rate is another cache
    AudioCache(files, 8000, tmp_path / "cache", name="toy", progress=False)
    assert len(count_loads) == 4


def test_cache_rebuilds_when_a_file_changes(files, tmp_path, count_loads):
    old = AudioCache(files, 16000, tmp_path / "cache", name="toy", progress=False)
    old_item = np.array(old[1])
    _write(files[1], 0.25, 16000, seed=99)  # new content and length
    st = files[1].stat()
    os.utime(files[1], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    count_loads.clear()
    new = AudioCache(files, 16000, tmp_path / "cache", name="toy", progress=False)
    assert new.built and len(count_loads) == 4
    assert new[1].shape == (4000,) and not np.array_equal(new[1][:2000], old_item)
    np.testing.assert_array_equal(new[1], wb.audio.load(files[1], 16000, 1)[0][0].numpy())
    assert len(list((tmp_path / "cache").glob("*.f32"))) == 1  # the stale array is gone
    np.testing.assert_array_equal(old[0], new[0])  # the old mapping stays readable
    # a touched file (same bytes, new mtime) and a changed file list also rebuild
    os.utime(files[0], ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert AudioCache(files, 16000, tmp_path / "cache", name="toy", progress=False).built
    assert AudioCache(files[:3], 16000, tmp_path / "cache", name="toy", progress=False).built
    assert not AudioCache(files[:3], 16000, tmp_path / "cache", name="toy", progress=False).built


def test_cache_failed_build_keeps_previous(files, tmp_path):
    cache_dir = tmp_path / "cache"
    good = AudioCache(files, 16000, cache_dir, name="toy", progress=False)
    before = sorted(p.name for p in cache_dir.iterdir())
    bad = files[0].parent / "bad.wav"
    bad.write_bytes(b"RIFF not really audio")
    with pytest.raises(AudioError, match="bad.wav"):
        AudioCache([*files, bad], 16000, cache_dir, name="toy", progress=False)
    assert sorted(p.name for p in cache_dir.iterdir()) == before  # no temp files, same cache
    reopened = AudioCache(files, 16000, cache_dir, name="toy", progress=False)
    assert not reopened.built
    np.testing.assert_array_equal(reopened[2], good[2])
    with pytest.raises(Exception, match="no such file"):
        AudioCache([tmp_path / "gone.wav"], 16000, cache_dir, progress=False)


def test_cache_multichannel_records_and_pickle(files, tmp_path):
    from types import SimpleNamespace

    clips = [SimpleNamespace(path=p) for p in files]  # records with a path, e.g. dataset clips
    cache = AudioCache(clips, 8000, tmp_path / "cache", mono=False, progress=False)
    assert cache.stem.startswith("audio-") and cache.stem.endswith("-8000hz-multi")
    stereo = cache[2]
    ref = wb.audio.load(files[2], sample_rate=8000)[0].numpy()
    assert stereo.shape == ref.shape == (2, 1600)
    np.testing.assert_array_equal(stereo, ref)
    assert cache[0].shape == (1, 2400)
    blob = pickle.dumps(cache)
    assert len(blob) < 20_000  # the samples are re-mapped, not pickled
    clone = pickle.loads(blob)
    np.testing.assert_array_equal(clone[2], stereo)
    named = AudioCache(files, 8000, tmp_path / "cache", name="toy set", progress=False)
    assert named.stem == "toy_set-8000hz-mono" and len(named) == 4
    stereo_all = AudioCache(files, 8000, tmp_path / "cache", False, channels=2, progress=False)
    assert stereo_all.stem.endswith("-8000hz-2ch") and stereo_all[0].shape == (2, 2400)
    np.testing.assert_array_equal(stereo_all[0][0], stereo_all[0][1])  # mono duplicated


@pytest.mark.skipif(not FSDD.is_dir(), reason="shared FSDD data absent")
def test_cache_on_real_recordings(tmp_path):
    paths = sorted(FSDD.glob("*_theo_*.wav"))[:20]
    cache = AudioCache(paths, 16000, tmp_path / "cache", name="fsdd", progress=False)
    for i in (0, 7, 19):
        np.testing.assert_array_equal(cache[i], wb.audio.load(paths[i], 16000, 1)[0][0].numpy())
