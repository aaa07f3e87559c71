"""Stems dataset: modes, augmentation, caching, clear errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from separation import data
from separation.data import StemsDataset, discover_sources, find_tracks
from wb.errors import WbError

from .conftest import SOURCES, SR, write_stems


def test_train_items_are_augmented_sums_and_reproducible(stems_root):
    ds = StemsDataset(stems_root, "train", SOURCES, SR, 1, segment=0.5, gain_db=(-6, 3), seed=1)
    mix, srcs = ds[5]
    assert mix.shape == (1, SR // 2) and srcs.shape == (2, 1, SR // 2)
    assert torch.allclose(mix, srcs.sum(0), atol=1e-6)  # mixture recomputed from the stems
    again_mix, again_srcs = ds[5]
    assert torch.equal(mix, again_mix) and torch.equal(srcs, again_srcs)
    other_mix, _ = ds[6]
    assert not torch.equal(mix, other_mix)
    # gains stay within [-6, +3] dB of the original stems (peak of the 0.3 sine)
    peak = float(srcs[0].abs().max())
    assert 0.3 * 10 ** (-6 / 20) - 1e-3 <= peak <= 0.3 * 10 ** (3 / 20) + 1e-3


def test_stereo_train_items(stems_root):
    ds = StemsDataset(stems_root, "train", SOURCES, 16000, 2, segment=0.25)
    mix, srcs = ds[0]
    assert mix.shape == (2, 4000) and srcs.shape == (2, 2, 4000)


def test_segments_and_full_modes(stems_root):
    seg = StemsDataset(stems_root, "valid", SOURCES, SR, 1, mode="segments", segment=0.5)
    assert len(seg) == 2 * 4  # two 2-second tracks, four 0.5 s segments each
    mix, srcs = seg[0]
    assert torch.allclose(mix, srcs.sum(0), atol=1e-6)
    capped = StemsDataset(
        stems_root, "valid", SOURCES, SR, 1, mode="segments", segment=0.5, max_segments_per_track=1
    )
    assert len(capped) == 2
    full = StemsDataset(stems_root, "test", SOURCES, SR, 1, mode="full")
    item = full[1]
    assert item["name"] == "t1" and item["mixture"].shape == (1, 2 * SR)
    assert item["sources"].shape == (2, 1, 2 * SR)


def test_errors(tmp_path, stems_root):
    with pytest.raises(WbError, match="split folder not found"):
        StemsDataset(stems_root, "nope", SOURCES, SR)
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(WbError, match="empty"):
        find_tracks(tmp_path / "empty", "train", SOURCES)
    root = write_stems(tmp_path / "broken", {"train": 2})
    (root / "train" / "t1" / "noise.wav").unlink()
    with pytest.raises(WbError, match=r"t1: track is missing noise\.wav"):
        StemsDataset(root, "train", SOURCES, SR)
    assert discover_sources(stems_root, "train") == ["noise", "tone"]


def test_audio_cache_avoids_decoding(tmp_path, stems_root, monkeypatch):
    """With a cache_dir the stems live in the spine's memory-mapped cache: a second dataset
    over the same files decodes nothing and reads the same samples."""
    root = tmp_path / "copy"
    shutil.copytree(stems_root, root)
    cache = tmp_path / "cache"
    ds = StemsDataset(root, "test", SOURCES, SR, 1, mode="full", cache_dir=cache)
    first = ds[0]
    assert len(list(cache.glob("*.f32"))) == 1 and len(list(cache.glob("*.json"))) == 1
    ref = StemsDataset(root, "test", SOURCES, SR, 1, mode="full")[0]  # decoded into memory
    assert torch.equal(first["mixture"], ref["mixture"])
    assert torch.equal(first["sources"], ref["sources"])

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(data.audio, "load", no_decoding)
    again = StemsDataset(root, "test", SOURCES, SR, 1, mode="full", cache_dir=cache)[0]
    assert torch.equal(first["mixture"], again["mixture"])
    assert isinstance(again["sources"], torch.Tensor) and np.isfinite(again["sources"]).all()


def test_train_items_are_seeded_by_epoch_and_index(stems_root):
    """Item ``(i, epoch)`` is segment ``epoch * samples_per_epoch + i`` of the seeded stream:
    a new segment every epoch, the same one for the same (i, epoch) in any process."""
    ds = StemsDataset(stems_root, "train", SOURCES, SR, 1, segment=0.5, samples_per_epoch=4)
    a, b = ds[(1, 2)], ds[(1, 2)]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.equal(ds[(1, 2)][0], ds[9][0])  # 2 * 4 + 1
    assert not torch.equal(ds[(1, 2)][0], ds[(1, 3)][0])


def test_capped_validation_segments_spread_over_the_track(tmp_path):
    root = write_stems(tmp_path, {"valid": 1}, seconds=5.0)  # ten 0.5 s segments
    ds = StemsDataset(
        root, "valid", SOURCES, SR, 1, mode="segments", segment=0.5, max_segments_per_track=4
    )
    seg = int(0.5 * SR)
    assert [offset for _, offset in ds._index] == [0, 3 * seg, 6 * seg, 9 * seg]
    one = StemsDataset(
        root, "valid", SOURCES, SR, 1, mode="segments", segment=0.5, max_segments_per_track=1
    )
    assert len(one) == 1


def test_full_mode_decodes_each_file_once(stems_root, monkeypatch):
    calls = []
    load = data.audio.load

    def counting(path, *args, **kwargs):
        calls.append(str(path))
        return load(path, *args, **kwargs)

    monkeypatch.setattr(data.audio, "load", counting)
    ds = StemsDataset(stems_root, "test", SOURCES, SR, 1, mode="full")
    item = ds[0]
    assert len(calls) == 3 and len(set(calls)) == 3  # mixture + 2 stems, each decoded once
    assert ds.track_length(0) == item["mixture"].shape[-1]


def _four_stems(root, n_tracks=3, seconds=1.0, mixture=True):
    """``root/train/t<k>/{vocals,drums,bass,other}.wav`` with distinct constant levels per
    track and stem (track k, stem j: ``0.01 * (10 * k + j + 1)``), so a segment's origin can
    be read from its values; ``mixture.wav`` = the sum, or none."""
    import soundfile as sf

    names = ["vocals", "drums", "bass", "other"]
    for k in range(n_tracks):
        d = root / "train" / f"t{k}"
        d.mkdir(parents=True)
        n = int(SR * seconds * (k + 1))  # track k is k+1 times as long
        total = np.zeros(n, np.float32)
        for j, name in enumerate(names):
            x = np.full(n, 0.01 * (10 * k + j + 1), np.float32)
            sf.write(d / f"{name}.wav", x, SR, subtype="FLOAT")
            total += x
        if mixture:
            sf.write(d / "mixture.wav", total, SR, subtype="FLOAT")
    return root


def test_groups_and_summed_mixture(tmp_path):
    root = _four_stems(tmp_path, mixture=False)
    groups = {"accompaniment": ["drums", "bass", "other"]}
    ds = StemsDataset(root, "train", ["vocals", "accompaniment"], SR, 1, mode="full",
                      groups=groups)  # fmt: skip
    item = ds[1]  # track 1: vocals 0.11, drums .12, bass .13, other .14
    np.testing.assert_allclose(item["sources"][:, 0, 0].numpy(), [0.11, 0.39], rtol=1e-5)
    np.testing.assert_allclose(item["mixture"][0, 0].item(), 0.50, rtol=1e-5)  # the sum
    with pytest.raises(data.ConfigError, match="not among"):
        StemsDataset(root, "train", ["vocals"], SR, 1, mode="full", groups={"x": ["drums"]})
    with pytest.raises(data.ConfigError, match="own stems"):
        StemsDataset(root, "train", ["vocals", "acc"], SR, 1, mode="full",
                     groups={"acc": ["vocals"]})  # fmt: skip


def test_remix_polarity_and_proportional_sampling(tmp_path):
    root = _four_stems(tmp_path, n_tracks=3)
    names = ["vocals", "drums", "bass", "other"]
    common = {"segment": 0.25, "gain_db": (0, 0), "samples_per_epoch": 400, "seed": 3}
    plain = StemsDataset(root, "train", names, SR, 1, **common)
    remix = StemsDataset(root, "train", names, SR, 1, remix=True, flip_polarity=True,
                         proportional=True, **common)  # fmt: skip

    def tracks_of(ds, i):
        _, srcs = ds[i]
        level = srcs[:, 0, 0].abs().numpy() / 0.01  # 10 k + j + 1
        signs = np.sign(srcs[:, 0, 0].numpy())
        return [round((v - j - 1) / 10) for j, v in enumerate(level)], signs

    same = [len(set(tracks_of(plain, i)[0])) == 1 for i in range(100)]
    assert all(same)  # one track for all sources
    draws = [tracks_of(remix, i) for i in range(400)]
    assert sum(len(set(t)) > 1 for t, _ in draws) > 200  # sources from different tracks
    signs = np.concatenate([s for _, s in draws])
    assert 0.4 < (signs < 0).mean() < 0.6  # polarity flipped about half the time
    counts = np.bincount(np.concatenate([t for t, _ in draws]), minlength=3) / (400 * 4)
    np.testing.assert_allclose(counts, [1 / 6, 2 / 6, 3 / 6], atol=0.04)  # lengths 1:2:3
    mix, srcs = remix[7]
    assert torch.allclose(mix, srcs.sum(0))
