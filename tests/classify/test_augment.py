"""Augmentation: identity when disabled or in eval mode, changes the input when forced."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from classify.augment import (
    AddNoise,
    Augmentation,
    Gain,
    Mixup,
    PitchShift,
    SpecAugment,
    Speed,
    TimeShift,
    TimeStretch,
)
from wb.audio import save
from wb.errors import ConfigError

SR = 8000


def _wave(batch: int = 4, n: int = 4000) -> torch.Tensor:
    torch.manual_seed(0)
    t = torch.arange(n) / SR
    f = torch.tensor([300.0, 500.0, 700.0, 900.0])[:batch, None]
    return 0.5 * torch.sin(2 * torch.pi * f * t) + 0.01 * torch.randn(batch, n)


WAVE_TRANSFORMS = [
    lambda p: TimeShift(SR, p=p, max_seconds=0.1),
    lambda p: Gain(p=p, min_db=3.0, max_db=6.0),
    lambda p: AddNoise(SR, p=p, min_snr_db=10, max_snr_db=20),
    lambda p: PitchShift(SR, p=p, semitones=2),
    lambda p: Speed(SR, p=p, min_rate=0.8, max_rate=0.9),
    lambda p: TimeStretch(SR, p=p, min_rate=1.2, max_rate=1.3),
]


@pytest.mark.parametrize("make", WAVE_TRANSFORMS)
def test_wave_transforms_identity_when_off_and_change_when_forced(make) -> None:
    x = _wave()
    off = make(0.0).train()
    assert torch.equal(off(x), x)
    forced = make(1.0)
    assert torch.equal(forced.eval()(x), x)  # eval mode: identity even with p=1
    y = forced.train()(x)
    assert y.shape == x.shape and not torch.allclose(y, x)


def test_pitch_and_speed_move_the_frequency() -> None:
    t = torch.arange(8000) / SR
    x = torch.sin(2 * torch.pi * 440.0 * t)[None]

    def peak(y: torch.Tensor) -> float:
        spec = torch.fft.rfft(y[0] * torch.hann_window(8000))
        return float(spec.abs().argmax()) * SR / 8000

    from classify.augment import pitch_shift

    assert abs(peak(pitch_shift(x, 2)) - 440.0 * 2 ** (2 / 12)) < 3.0
    torch.manual_seed(0)
    fast = Speed(SR, p=1.0, min_rate=1.1, max_rate=1.1).train()(x)
    assert abs(peak(fast) - 484.0) < 3.0 and fast.shape == x.shape


def test_time_stretch_keeps_the_pitch_and_changes_the_length() -> None:
    from classify.augment import time_stretch

    t = torch.arange(8000) / SR
    x = torch.sin(2 * torch.pi * 440.0 * t)[None]
    burst = torch.zeros(1, 8000)
    burst[:, :4000] = x[:, :4000]
    for rate in (0.8, 1.25):
        y = time_stretch(x, rate)
        assert y.shape == (1, round(8000 / rate))
        spec = torch.fft.rfft(y[0] * torch.hann_window(y.shape[-1]))
        assert abs(float(spec.abs().argmax()) * SR / y.shape[-1] - 440.0) < 3.0
        # a 0.5 s tone burst lasts 0.5 / rate seconds afterwards
        frames = time_stretch(burst, rate)[0].unfold(0, 80, 80)  # 10 ms frames
        rms = frames.pow(2).mean(-1).sqrt()
        active = float((rms > 0.5 * rms.max()).sum()) * 0.01
        assert abs(active - 0.5 / rate) < 0.05 * 0.5 / rate + 0.02
    # the module: 6,400 stretched samples centred in the 8,000 of the input, pitch kept
    fast = TimeStretch(SR, p=1.0, min_rate=1.25, max_rate=1.25).train()(x)
    assert fast.shape == x.shape
    assert fast[0, :790].abs().max() < 1e-6 and fast[0, -790:].abs().max() < 1e-6
    core = fast[:, 800:7200]
    spec = torch.fft.rfft(core[0] * torch.hann_window(6400))
    assert abs(float(spec.abs().argmax()) * SR / 6400 - 440.0) < 3.0
    with pytest.raises(ConfigError, match="min_rate"):
        TimeStretch(SR, p=1.0, min_rate=0.01, max_rate=1.0)
    with pytest.raises(ValueError, match="samples"):
        time_stretch(x[:, :100], 1.1)


def test_spec_augment_and_mixup() -> None:
    feats = torch.randn(4, 1, 32, 50)
    assert torch.equal(SpecAugment(p=0.0).train()(feats), feats)
    sa = SpecAugment(p=1.0, time_mask=10, freq_mask=8)
    assert torch.equal(sa.eval()(feats), feats)
    out = sa.train()(feats)
    assert out.shape == feats.shape and not torch.equal(out, feats)

    targets = torch.eye(4)
    x, t = Mixup(p=0.0).train()(feats, targets)
    assert torch.equal(x, feats) and torch.equal(t, targets)
    torch.manual_seed(1)
    x, t = Mixup(p=1.0, alpha=0.4).train()(feats, targets)
    assert not torch.equal(x, feats)
    assert torch.allclose(t.sum(dim=1), torch.ones(4)) and (t.max(dim=1).values >= 0.5).all()


def test_noise_snr_and_gain_amounts() -> None:
    x = _wave()
    noisy = AddNoise(SR, p=1.0, min_snr_db=10.0, max_snr_db=10.0).train()(x)
    noise = noisy - x
    snr = 10 * torch.log10(x.pow(2).mean(1) / noise.pow(2).mean(1))
    assert torch.allclose(snr, torch.full_like(snr, 10.0), atol=1e-3)
    loud = Gain(p=1.0, min_db=6.0, max_db=6.0).train()(x)
    assert torch.allclose(loud, x * 10 ** (6 / 20))


def test_noise_from_folder(tmp_path) -> None:
    rng = np.random.default_rng(0)
    for k in range(2):
        save(tmp_path / f"bg{k}.wav", 0.1 * rng.standard_normal(3000).astype(np.float32), SR)
    aug = AddNoise(SR, p=1.0, min_snr_db=5, max_snr_db=5, noise_dir=str(tmp_path)).train()
    assert len(aug.bank) == 2
    x = _wave()
    assert not torch.allclose(aug(x), x)
    with pytest.raises(ConfigError):
        AddNoise(SR, p=1.0, noise_dir=str(tmp_path / "missing"))


def test_augmentation_bundle() -> None:
    aug = Augmentation(SR)  # everything disabled
    x = _wave()
    aug.train()
    assert torch.equal(aug.wave(x), x)
    feats = torch.randn(4, 1, 16, 20)
    assert torch.equal(aug.spec(feats), feats)
    forced = Augmentation(SR, gain={"p": 1.0}, spec_augment={"p": 1.0}).train()
    assert not torch.equal(forced.wave(x), x)
    with pytest.raises(ConfigError):
        Augmentation(SR, reverb={"p": 1.0})
    with pytest.raises(ConfigError):
        Augmentation(SR, gain={"p": 2.0})
    with pytest.raises(ConfigError):
        Augmentation(SR, gain={"prob": 1.0})
