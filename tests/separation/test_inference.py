"""Chunked overlap-add inference: exact reconstruction, bounded chunks, format restoration."""

from __future__ import annotations

import pytest
import torch

from separation import models
from separation.inference import separate_audio, separate_tensor
from wb.errors import WbError

from .conftest import SR, GainModel

SEG = int(0.5 * SR)


@pytest.mark.parametrize("engine", ["ola", "demucs"])
@pytest.mark.parametrize("length", [SEG // 3, SEG, 3 * SEG + 123])
@pytest.mark.parametrize("overlap", [0.25, 0.5, 0.0])
def test_identity_reconstructs_exactly(engine, length, overlap):
    torch.manual_seed(length)
    model = GainModel(gains=(1.0, 1.0, 0.5))
    x = torch.randn(1, length)
    out = separate_tensor(model, x, overlap=overlap, engine=engine, quiet=True)
    assert out.shape == (3, 1, length)
    assert (out[0] - x).abs().max() < 1e-5 and (out[1] - x).abs().max() < 1e-5
    assert (out[2] - 0.5 * x).abs().max() < 1e-5
    # every forward pass sees at most one chunk: memory does not grow with the input
    # (our engine pads every chunk to the segment; apply_model passes a short last chunk)
    assert max(model.seen) <= SEG and (engine == "demucs" or set(model.seen) == {SEG})


def test_batched_chunks_match_single():
    model = GainModel()
    x = torch.randn(1, 5 * SEG + 7)
    a = separate_tensor(model, x, batch_segments=1, quiet=True)
    b = separate_tensor(model, x, batch_segments=4, quiet=True)
    assert torch.allclose(a, b, atol=1e-6) and (b[0] - x).abs().max() < 1e-5


def test_own_overlap_add_matches_demucs_apply_model():
    torch.manual_seed(0)
    model = models.build("hdemucs", ["a", "b"], SR, 1, segment=0.5, channels=8, depth=3, nfft=256)
    x = torch.randn(1, 2 * SEG + 333) * 0.1
    ours = separate_tensor(model, x, overlap=0.25, engine="ola", quiet=True)
    theirs = separate_tensor(model, x, overlap=0.25, engine="demucs", quiet=True)
    # same chunks, padding and weights; they differ only where apply_model runs the short
    # last chunk unpadded (ours pads every chunk to the full segment with real context)
    last = 2 * int(0.75 * SEG)
    assert torch.allclose(ours[..., :last], theirs[..., :last], atol=1e-5)


def test_htdemucs_segment_limit_and_bad_args():
    model = models.build("htdemucs", ["a"], SR, 1, segment=0.5, channels=8, depth=2, nfft=256)
    with pytest.raises(WbError, match="training segment"):
        separate_tensor(model, torch.randn(1, SR), segment=1.0, quiet=True)
    with pytest.raises(WbError, match="overlap"):
        separate_tensor(GainModel(), torch.randn(1, SR), overlap=1.0, quiet=True)
    with pytest.raises(WbError, match="channels"):
        separate_tensor(GainModel(), torch.randn(2, SR), quiet=True)


def test_separate_audio_restores_rate_and_channels():
    model = GainModel()
    x = torch.randn(2, 44100) * 0.1
    out = separate_audio(model, x, 44100, quiet=True)
    assert out.shape == (2, 2, 44100)
    # identity model: each stem is the band-limited mono downmix, duplicated to both channels
    assert torch.equal(out[0, 0], out[0, 1])


def test_demucs_bag_of_models_and_its_segment_limit():
    from demucs.apply import BagOfModels

    kwargs = {"segment": 0.5, "channels": 8, "depth": 2, "nfft": 256, "t_layers": 1}
    bag = BagOfModels([models.build("htdemucs", ["a", "b"], SR, 2, **kwargs) for _ in range(2)])
    out = separate_tensor(bag, torch.randn(2, 3 * SEG) * 0.1, quiet=True)
    assert out.shape == (2, 2, 3 * SEG) and torch.isfinite(out).all()
    with pytest.raises(WbError, match="training segment"):
        separate_tensor(bag, torch.randn(2, SEG), segment=1.0, quiet=True)


@pytest.mark.parametrize("trim", [-7, 5])
def test_wrong_output_length_is_an_error(trim):
    class Crop(GainModel):
        def forward(self, x):
            y = super().forward(x)
            return y[..., :trim] if trim < 0 else torch.nn.functional.pad(y, (0, trim))

    with pytest.raises(WbError, match="the model returned shape"):
        separate_tensor(Crop(), torch.randn(1, 3 * SEG), segment=0.5, quiet=True)
