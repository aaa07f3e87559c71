"""Front ends: shapes, agreement with librosa, per-frequency normalisation, length policy."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from classify.frontends import (
    Frontend,
    LengthPolicy,
    build_frontend,
    eval_windows,
    log_frequency_filterbank,
    pad_to,
    train_view,
)
from wb.errors import ConfigError

SR = 8000


def _speechlike(seconds: float = 0.75, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1375 * t * (1 + t))
    return (x * np.hanning(len(t)) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize("kind,bins", [("logmel", 40), ("mfcc", 13)])
@pytest.mark.parametrize("shape", [(3, 4000), (3, 1, 4000)])
def test_shapes(kind: str, bins: int, shape: tuple[int, ...]) -> None:
    fe = Frontend(kind, sample_rate=SR, n_fft=256, hop_length=80, n_mels=40, n_mfcc=13)
    out = fe(torch.randn(*shape))
    assert out.shape == (3, 1, bins, fe.n_frames(4000))
    assert fe.n_frames(4000) == 1 + 4000 // 80
    assert fe.n_bins == bins and torch.isfinite(out).all()


def test_rejects_bad_input_and_settings() -> None:
    fe = Frontend(sample_rate=SR, n_fft=256, n_mels=32)
    with pytest.raises(ConfigError):
        fe(torch.randn(2, 2, 1000))  # stereo
    with pytest.raises(ConfigError):
        Frontend(kind="cqt")
    with pytest.raises(ConfigError):
        Frontend(sample_rate=SR, f_max=6000)  # above Nyquist
    with pytest.raises(ConfigError):
        build_frontend(SR, n_fft=256, bogus=1)
    with pytest.raises(ConfigError):
        Frontend(kind="logfreq", sample_rate=SR, f_min=0.0)  # no log axis down to 0 Hz
    with pytest.raises(ConfigError):
        Frontend(kind="logfreq", sample_rate=SR, f_min=50.0, bins_per_octave=0)


def test_filterbank_peaks_at_the_tone():
    sr, n_fft = 16000, 2048
    fb = log_frequency_filterbank(sr, n_fft, 50.0, 5000.0, 24)
    assert torch.allclose(fb.sum(0), torch.ones(fb.shape[1]), atol=1e-5)  # no empty filter
    freqs = torch.linspace(0, sr / 2, n_fft // 2 + 1)
    for f in (82.4, 220.0, 1046.5):
        spectrum = torch.exp(-0.5 * ((freqs - f) / 3.0) ** 2)  # a narrow peak at f
        k = int((spectrum @ fb).argmax())
        centre = 50.0 * 2 ** (k / 24)
        assert abs(12 * np.log2(centre / f)) <= 0.5  # within half a semitone
    with pytest.raises(ValueError):
        log_frequency_filterbank(sr, n_fft, 50.0, 9000.0, 24)


def test_logfreq_transposition_is_a_shift_of_rows() -> None:
    # a harmonic tone a whole tone higher moves by 2 * bins_per_octave / 12 rows: what lets a
    # convolutional head see a transposed chord as the same pattern
    fe = Frontend("logfreq", sample_rate=16000, n_fft=4096, hop_length=512, f_min=65.4,
                  f_max=4000.0, bins_per_octave=36, log="log")  # fmt: skip
    assert fe.n_bins == int(np.floor(36 * np.log2(4000 / 65.4))) + 1

    def profile(f0: float) -> np.ndarray:
        t = np.arange(16000) / 16000
        x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6)).astype(np.float32)
        out = fe(torch.from_numpy(x)[None])[0, 0].mean(-1).numpy()
        return out - out.mean()

    low, high = profile(196.0), profile(196.0 * 2 ** (2 / 12))
    shifts = range(-10, 11)
    best = max(shifts, key=lambda k: float(np.dot(np.roll(low, k)[20:-20], high[20:-20])))
    assert best == 6
    assert int(low.argmax()) == round(36 * np.log2(196.0 / 65.4))  # the fundamental's row


def test_chroma_folds_octaves_onto_pitch_classes() -> None:
    fe = Frontend("chroma", sample_rate=16000, n_fft=4096, hop_length=512, f_min=32.70,
                  f_max=4000.0, bins_per_octave=36, log="log")  # fmt: skip
    assert fe.n_bins == 36

    def row(f0: float) -> int:
        t = np.arange(16000) / 16000
        x = np.sin(2 * np.pi * f0 * t).astype(np.float32)
        return int(fe(torch.from_numpy(x)[None])[0, 0].mean(-1).argmax())

    # pitch class rows counted from f_min's C: A is 9 semitones up, 3 rows per semitone
    assert row(220.0) == row(440.0) == row(880.0) == 27
    assert row(261.63) == row(130.81) == 0 and row(293.66) == 6
    with pytest.raises(ConfigError, match="span an octave"):
        Frontend("chroma", sample_rate=16000, f_min=100.0, f_max=150.0)


@pytest.mark.parametrize("mel_scale,norm,htk", [("slaney", "slaney", False), ("htk", None, True)])
def test_logmel_matches_librosa(mel_scale: str, norm: str | None, htk: bool) -> None:
    y = _speechlike()
    params = dict(n_fft=256, win_length=200, hop_length=80, n_mels=40, f_min=20.0, f_max=3800.0)
    fe = Frontend("logmel", sample_rate=SR, mel_scale=mel_scale, norm=norm, top_db=80.0, **params)
    ours = fe(torch.from_numpy(y)[None])[0, 0].double().numpy()
    mel = librosa.feature.melspectrogram(
        y=y.astype(np.float64), sr=SR, n_fft=256, hop_length=80, win_length=200, n_mels=40,
        fmin=20.0, fmax=3800.0, htk=htk, norm=norm, center=True, pad_mode="constant", power=2.0,
    )  # fmt: skip
    ref = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 0.05  # dB; float32 STFT vs float64


def test_mfcc_matches_librosa() -> None:
    y = _speechlike(seed=1)
    fe = Frontend("mfcc", sample_rate=SR, n_fft=256, hop_length=80, n_mels=40, n_mfcc=13)
    ours = fe(torch.from_numpy(y)[None])[0, 0].double().numpy()
    mel = librosa.feature.melspectrogram(
        y=y.astype(np.float64), sr=SR, n_fft=256, hop_length=80, n_mels=40, pad_mode="constant"
    )
    ref = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=80.0), n_mfcc=13, norm="ortho")
    assert np.abs(ours - ref).max() < 0.1


def test_log_variant_is_natural_log() -> None:
    fe = Frontend(sample_rate=SR, n_fft=256, hop_length=80, n_mels=16, log="log", eps=1e-6)
    x = torch.randn(1, 2000)
    assert torch.allclose(fe(x)[0, 0], torch.log(fe.mel(x)[0] + 1e-6))


def test_frequency_norm_fitted_on_training_audio() -> None:
    fe = Frontend(sample_rate=SR, n_fft=256, hop_length=80, n_mels=24, normalize=True)
    train = [torch.randn(4, 4000) * s for s in (0.1, 0.5, 1.0)]
    fe.fit_norm(train)
    feats = torch.cat([fe(b) for b in train])
    per_bin = feats.transpose(0, 2).reshape(24, -1)
    assert per_bin.mean(dim=1).abs().max() < 1e-3
    assert (per_bin.std(dim=1) - 1).abs().max() < 1e-2
    assert "norm.mean" in fe.state_dict()  # saved with the model


def test_instance_norm_removes_level_and_static_filter() -> None:
    y = torch.from_numpy(_speechlike())[None]
    fe = Frontend(sample_rate=SR, n_fft=256, hop_length=80, n_mels=32, instance_norm="mean",
                  top_db=None)  # fmt: skip
    a, b = fe(y), fe(0.1 * y)  # -20 dB: a constant offset in every log-mel bin
    assert torch.allclose(a, b, atol=1e-3)
    active = fe.mel(y).amax(dim=1) >= fe.mel(y).amax() * 1e-4  # within 40 dB of the peak
    assert a[0, 0][:, active[0]].mean(dim=1).abs().max() < 1e-4
    with pytest.raises(ConfigError):
        Frontend(sample_rate=SR, instance_norm="global")


def test_pad_modes() -> None:
    clip = np.arange(1, 5, dtype=np.float32)
    assert pad_to(clip, 8, "zero").tolist() == [0, 0, 1, 2, 3, 4, 0, 0]
    assert pad_to(clip, 8, "zero", offset=0).tolist() == [1, 2, 3, 4, 0, 0, 0, 0]
    assert pad_to(clip, 10, "repeat").tolist() == [1, 2, 3, 4, 1, 2, 3, 4, 1, 2]
    noisy = pad_to(clip, 8, "noise", offset=0, noise_db=-40)
    assert noisy[:4].tolist() == [1, 2, 3, 4] and 0 < np.abs(noisy[4:]).max() < 0.1


def test_train_view_and_eval_windows() -> None:
    policy = LengthPolicy(seconds=0.5, eval_crop="sliding", hop_seconds=0.25)
    n, hop = policy.n_samples(SR), policy.hop_samples(SR)
    long = np.arange(int(1.3 * SR), dtype=np.float32)
    rng = np.random.default_rng(0)
    starts = {int(train_view(long, n, policy, rng)[0]) for _ in range(20)}
    assert len(starts) > 1 and all(0 <= s <= len(long) - n for s in starts)  # random crop
    win = eval_windows(long, n, policy, hop)
    assert win.shape[1] == n and win[0, 0] == 0 and win[-1, -1] == long[-1]  # covers the end
    assert eval_windows(long, n, LengthPolicy(seconds=0.5), hop).shape == (1, n)  # centre crop
    short = np.ones(100, dtype=np.float32)
    assert eval_windows(short, n, policy, hop).shape == (1, n)
    with pytest.raises(ConfigError):
        LengthPolicy(seconds=0)
    with pytest.raises(ConfigError):
        LengthPolicy(pad="mirror")
