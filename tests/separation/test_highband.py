"""Tests of the high-band extension (separation.highband) and its use in StreamSeparator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from separation import inference
from separation.highband import HighBandExtension
from tests.separation.test_inference import GainModel
from wb.errors import WbError

SR, MODEL_SR = 16000, 8000


def _run(hb: HighBandExtension, x: torch.Tensor, e: torch.Tensor, step: int) -> torch.Tensor:
    outs = []
    for i in range(0, x.shape[-1], step):
        outs.append(hb.push(x[:, i : i + step], e[..., i : i + step]))
    outs.append(hb.finish())
    return torch.cat(outs, dim=-1)


def _tone(freq: float, n: int) -> torch.Tensor:
    return torch.sin(2 * torch.pi * freq * torch.arange(n) / SR).double()


def test_high_band_is_reconstructed_exactly_and_follows_the_louder_stem():
    n = SR * 2
    x = (_tone(6000.0, n) + _tone(1000.0, n))[None]  # a 6 kHz partial above fn = 4 kHz
    e = torch.zeros(2, 1, n, dtype=torch.float64)
    e[0, 0] = 0.3 * _tone(3000.0, n)  # stem 0 is loud in the reference band 2-3.6 kHz
    e[1, 0] = 0.1 * _tone(2500.0, n)
    out = _run(HighBandExtension(2, 1, SR, MODEL_SR), x, e, 777).double()
    assert out.shape == e.shape
    added = out - e
    inner = slice(SR // 10, -SR // 10)
    total = added.sum(dim=0)[0, inner]
    # the masks sum to one: the stems' high bands add up to the input's (-45 dB error: the
    # fixed band weight applied per frame is not exactly a time-invariant filter)
    err = (total - _tone(6000.0, n)[inner]).pow(2).mean() / 0.5
    assert err < 10 ** (-4.5)
    share0 = float(added[0, 0, inner].pow(2).sum() / total.pow(2).sum())
    # mask = share of reference-band energy (0.9); the stem gets 0.9^2 of the energy
    assert share0 == pytest.approx(0.9**2, abs=0.02)
    # no samples lost at the edges: the abrupt start and end only leak a little below fn
    edges = added.sum(dim=0)[0].pow(2).sum() / _tone(6000.0, n).pow(2).sum()
    assert 0.99 < float(edges) < 1.01


def test_streaming_equals_one_shot_and_silence_shares_equally():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5000, generator=g, dtype=torch.float64)
    e = torch.zeros(3, 2, 5000, dtype=torch.float64)  # silent estimates: equal thirds
    whole = _run(HighBandExtension(3, 2, SR, MODEL_SR), x, e, 5000)
    parts = _run(HighBandExtension(3, 2, SR, MODEL_SR), x, e, 333)
    assert torch.allclose(whole, parts, atol=1e-6)
    assert torch.allclose(whole[0], whole[2], atol=1e-6)
    with pytest.raises(WbError, match="below"):
        HighBandExtension(2, 1, 8000, 8000)


def test_stream_separator_gives_full_band_stems():
    """An identity model at 8 kHz: without the extension a 16 kHz input loses its 6 kHz
    partial; with it the stems sum to the whole input."""
    n = SR * 2
    x = (0.5 * _tone(6000.0, n) + 0.5 * _tone(500.0, n)).float()[None]
    model = GainModel((1.0, 0.5))
    full = inference.separate_audio(model, x, SR, quiet=True)
    limited = inference.separate_audio(model, x, SR, quiet=True, high_band=False)
    inner = slice(SR // 10, -SR // 10)

    def level_6k(y: torch.Tensor) -> float:
        spec = torch.fft.rfft(y[inner].double())
        return float(spec.abs()[int(6000 * (y[inner].shape[-1]) / SR)])

    assert level_6k(limited[0, 0]) < 1e-3 * level_6k(x[0])
    # the stems share the high band 2:1 in energy-ratio terms (gains 1 and 0.5 -> 0.8 / 0.2)
    hb = full - limited
    share = float(hb[0, 0, inner].pow(2).sum() / hb.sum(dim=0)[0, inner].pow(2).sum())
    assert share == pytest.approx(0.8**2, abs=0.03)
    assert torch.allclose(hb.sum(dim=0)[0, inner], 0.5 * _tone(6000.0, n).float()[inner], atol=5e-3)
    sub = inference.separate_audio(model, x, SR, stems=["s1"], quiet=True)
    assert torch.allclose(sub[0], full[1], atol=1e-6)


def test_long_pushes_are_batched_identically_and_the_stems_sum_to_the_input():
    """Pushes longer than one batch of frames give what small pushes give; with estimates
    that sum to the band-limited input, the full-band stems sum to the input, fade band
    included (the residual is shared out)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 44100 * 3, generator=g)
    model = GainModel((0.5, 0.5))  # estimates sum to the (band-limited) mixture
    whole = inference.separate_audio(model, x, 44100, quiet=True, block_seconds=3.0)
    small = inference.separate_audio(model, x, 44100, quiet=True, block_seconds=0.1)
    assert torch.allclose(whole, small, atol=1e-5)
    inner = slice(4410, -4410)
    err = (whole.sum(dim=0)[0, inner] - x[0, inner]).pow(2).mean() / x[0, inner].pow(2).mean()
    assert float(err) < 1e-4  # -40 dB: also across 0.9-1.0 x 4 kHz, where soxr rolls off


def _reference_extension(x, e, hb: HighBandExtension):
    """The definition, frame by frame and stem by stem in float64: each stem's share of the
    reference-band energy times the weighted residual spectrum, inverted and overlap-added."""
    n, hop = hb.n, hb.hop
    window = np.sqrt(np.hanning(n + 1)[:-1])
    pad = n - hop
    length = x.shape[-1]
    xp = np.pad(x, ((0, 0), (pad, n)))
    ep = np.pad(e, ((0, 0), (0, 0), (pad, n)))
    acc = np.zeros(ep.shape)
    for start in range(0, xp.shape[-1] - n + 1, hop):
        xs = np.fft.rfft(xp[:, start : start + n] * window)  # (C, bins)
        es = np.fft.rfft(ep[..., start : start + n] * window)  # (K, C, bins)
        energy = (np.abs(es[..., hb.reference]) ** 2).sum(axis=(1, 2))
        share = energy / energy.sum() if energy.sum() > 0 else np.full(len(energy), 1 / len(energy))
        residual = (xs - es.sum(axis=0)) * hb.weight
        for k in range(ep.shape[0]):
            acc[k, :, start : start + n] += np.fft.irfft(share[k] * residual, n=n) * window
    return (ep + acc / 2.0)[..., pad : pad + length]


def test_matches_a_frame_by_frame_reference_of_the_definition():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 9000, generator=g, dtype=torch.float64)
    e = 0.4 * torch.randn(3, 2, 9000, generator=g, dtype=torch.float64)
    e[:, :, 4000:4600] = 0.0  # silent estimates for a while: equal shares there
    hb = HighBandExtension(3, 2, SR, MODEL_SR, window_seconds=0.016)
    out = _run(hb, x, e, 1234).double().numpy()
    ref = _reference_extension(x.numpy(), e.numpy(), hb)  # uses only hb's fixed settings
    assert out.shape == ref.shape
    assert abs(out - ref).max() < 1e-5
