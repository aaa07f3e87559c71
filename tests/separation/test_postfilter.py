"""Post-filters: parsing, mixture consistency, soft masks, and their place in inference."""

from __future__ import annotations

import math

import pytest
import torch

from separation import hub, models
from separation.evaluate import oracle_irm
from separation.inference import StreamSeparator, separate_tensor
from separation.losses import si_sdr
from separation.postfilter import PostFilter, mixture_consistency, soft_mask
from wb.checkpoint import save_model
from wb.errors import WbError

from .conftest import SR, TINY_TASNET, GainModel


def _tones(seconds: float = 2.0) -> torch.Tensor:
    """``(2, 1, samples)``: a 220 Hz and a 1,500 Hz tone (disjoint spectra)."""
    t = torch.arange(int(SR * seconds)) / SR
    low, high = 0.5 * torch.sin(2 * math.pi * 220 * t), 0.3 * torch.sin(2 * math.pi * 1500 * t)
    return torch.stack([low, high])[:, None]


@pytest.mark.parametrize(
    ("spec", "kind", "power", "text"),
    [(None, "none", 1.0, "none"), ("none", "none", 1.0, "none"),
     ("consistency", "consistency", 1.0, "consistency"), ("mask", "mask", 1.0, "mask"),
     ("mask:2", "mask", 2.0, "mask:2"), (" mask:0.5", "mask", 0.5, "mask:0.5")],
)  # fmt: skip
def test_parse(spec, kind, power, text):
    post = PostFilter.parse(spec)
    assert (post.kind, post.power, str(post)) == (kind, power, text)
    assert PostFilter.parse(str(post)) == post


@pytest.mark.parametrize("spec", ["wiener", "mask:", "mask:x", "mask:0", "mask:-1", "mask:nan",
                                  "mask:9", "consistency:2", "none:1"])  # fmt: skip
def test_parse_rejects(spec):
    with pytest.raises(WbError, match="postfilter") as err:
        PostFilter.parse(spec)
    assert "\n" not in str(err.value)


def test_mixture_consistency_shares_the_residual_equally():
    torch.manual_seed(0)
    est = torch.randn(3, 4, 1, 100)
    mix = torch.randn(3, 1, 100)
    out = mixture_consistency(est, mix)
    assert torch.allclose(out.sum(dim=1), mix, atol=1e-5)
    # every source moved by the same amount
    delta = out - est
    assert torch.allclose(delta, delta[:, :1].expand_as(delta), atol=1e-6)
    exact = torch.stack([mix * 0.25] * 4, dim=1)  # estimates that already sum to the mixture
    assert torch.allclose(mixture_consistency(exact, mix), exact, atol=1e-6)


@pytest.mark.parametrize("power", [0.5, 1.0, 2.0])
def test_soft_mask_outputs_sum_to_the_mixture(power):
    torch.manual_seed(1)
    est = torch.randn(2, 3, 2, 5000)
    mix = torch.randn(2, 2, 5000)
    out = soft_mask(est, mix, SR, power)
    assert out.shape == est.shape and out.dtype == est.dtype
    assert torch.allclose(out.sum(dim=1), mix, atol=1e-4)
    # silent estimates: the mixture is shared equally, nothing is lost
    silent = soft_mask(torch.zeros(1, 4, 1, 3000), mix[:1, :1, :3000], SR)
    assert torch.allclose(silent, mix[:1, :1, :3000].expand(4, 1, 3000) / 4, atol=1e-5)


def test_soft_mask_removes_artefacts_outside_the_mixture():
    sources = _tones()
    mix = sources.sum(dim=0)
    noise = torch.randn(sources.shape, generator=torch.Generator().manual_seed(0))
    noisy = sources + 0.2 * noise  # broadband artefacts the mixture does not contain
    before = si_sdr(noisy, sources)
    after = si_sdr(soft_mask(noisy, mix, SR, 1.0), sources)
    wiener = si_sdr(soft_mask(noisy, mix, SR, 2.0), sources)
    assert before.max() < 6.0
    assert after.min() > 18.0 and bool((wiener > after).all())


def test_oracle_irm_separates_disjoint_tones_and_matches_the_power_mask_formula():
    sources = _tones()
    assert si_sdr(oracle_irm(sources, SR), sources).min() > 30.0
    torch.manual_seed(2)
    noise = torch.randn(4, 1, 4000)  # overlapping spectra: compare with the formula itself
    window = torch.hann_window(512, dtype=torch.float64)
    spec = torch.stft(noise[:, 0].double(), 512, 128, window=window, return_complex=True)
    mask = spec.abs() ** 2 / (spec.abs() ** 2).sum(0, keepdim=True)
    want = torch.istft(mask * spec.sum(0), 512, 128, window=window, length=4000)
    assert torch.allclose(oracle_irm(noise, SR)[:, 0], want.float(), atol=1e-5)
    short = torch.randn(2, 1, 100)  # shorter than the STFT window
    assert oracle_irm(short, SR).shape == short.shape


@pytest.mark.parametrize("scale", [1e-6, 1e-4, 1.0, 1e4])
def test_soft_mask_keeps_the_mixture_at_any_level_and_power(scale):
    torch.manual_seed(4)
    mix = torch.randn(1, 1, 4000)
    est = scale * torch.randn(1, 3, 1, 4000)
    out = soft_mask(est, mix, SR, 8.0)
    assert bool(torch.isfinite(out).all())
    assert torch.allclose(out.sum(dim=1), mix, atol=1e-4)


def test_soft_mask_rejects_a_mixture_of_another_shape():
    with pytest.raises(WbError, match="mixture shape"):
        soft_mask(torch.zeros(2, 3, 1, 1000), torch.zeros(1, 2, 1000), SR)


@pytest.mark.parametrize("post", ["consistency", "mask", "mask:2"])
def test_chunked_inference_stems_sum_to_the_mixture(post):
    model = GainModel(gains=(0.3, 0.9))  # estimates that do not sum to the input
    x = torch.randn(1, 3 * SR + 11, generator=torch.Generator().manual_seed(3))
    plain = separate_tensor(model, x, quiet=True)
    assert not torch.allclose(plain.sum(dim=0), x, atol=1e-2)
    out = separate_tensor(model, x, quiet=True, postfilter=post)
    assert out.shape == plain.shape
    assert torch.allclose(out.sum(dim=0), x, atol=1e-4)
    # a gain model's estimates are scaled copies of the input: the mask shares it 0.25 / 0.75
    # (power 1) or 0.1 / 0.9 (power 2); consistency adds (1 - 1.2) / 2 of it to each
    share = {"consistency": (0.2, 0.8), "mask": (0.25, 0.75), "mask:2": (0.1, 0.9)}[post]
    for k, want in enumerate(share):
        assert torch.allclose(out[k], want * x, atol=1e-4)
    same = separate_tensor(model, x, quiet=True, postfilter="none")
    assert torch.equal(same, plain)
    with pytest.raises(WbError, match="postfilter"):
        separate_tensor(model, x, quiet=True, postfilter="wiener")
    with pytest.raises(WbError, match="postfilter"):
        StreamSeparator(model, SR, 1, quiet=True, postfilter="mask:0")


def test_model_file_carries_its_postfilter(tmp_path):
    kwargs = {k: v for k, v in TINY_TASNET.items() if k != "name"}
    model = models.build("convtasnet", ["a", "b"], SR, 1, **kwargs)
    meta = {"sources": ["a", "b"], "sample_rate": SR, "segment": 0.5, "overlap": 0.25}
    kw = {"sources": ["a", "b"], "sample_rate": SR, "audio_channels": 1, **kwargs}
    ref = models.class_ref("convtasnet")
    old = save_model(tmp_path / "old.pt", ref, kw, model.state_dict(), meta=meta)
    new = save_model(tmp_path / "new.pt", ref, kw, model.state_dict(),
                     meta={**meta, "postfilter": "mask:2"})  # fmt: skip
    assert hub.load_separator(str(old)).postfilter == "none"  # files from before post-filters
    sep = hub.load_separator(str(new))
    assert sep.postfilter == "mask:2"
    assert sep.with_postfilter(None).postfilter == "mask:2"
    assert sep.with_postfilter("consistency").postfilter == "consistency"
    with pytest.raises(WbError, match="postfilter"):
        sep.with_postfilter("mask:x")
    bad = save_model(tmp_path / "bad.pt", ref, kw, model.state_dict(),
                     meta={**meta, "postfilter": "mask:10"})  # fmt: skip
    with pytest.raises(WbError, match="bad.pt: postfilter") as err:
        hub.load_separator(str(bad))
    assert "\n" not in str(err.value)
