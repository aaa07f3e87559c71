"""Chunked overlap-add inference: exact reconstruction, bounded chunks, format restoration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from separation import inference, models
from separation.inference import separate_audio, separate_tensor
from wb.errors import AudioError, WbError

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


def _apply_model(model, x, overlap, segment):
    from fractions import Fraction

    from demucs.apply import apply_model

    with torch.no_grad():
        return apply_model(
            model.eval(), x[None], shifts=0, split=True, overlap=overlap, progress=False,
            segment=Fraction(segment).limit_denominator(10**6),
        )[0]  # fmt: skip


def _demucs_models():
    torch.manual_seed(0)
    small = {"channels": 8, "nfft": 256}
    return {
        "hdemucs": models.build("hdemucs", ["a", "b"], SR, 1, segment=0.5, depth=3, **small),
        "htdemucs": models.build(
            "htdemucs", ["a", "b"], SR, 1, segment=0.5, depth=2, t_layers=1, **small
        ),
    }


@pytest.mark.parametrize("name", ["hdemucs", "htdemucs"])
@pytest.mark.parametrize("segment", [0.5, 0.3])
def test_demucs_engine_equals_apply_model_split(name, segment):
    """Our chunking + apply_model(split=False) per window == Demucs' own split=True
    inference, last (short, context-padded) chunks included."""
    model = _demucs_models()[name]
    x = torch.randn(1, 3 * SEG + 333, generator=torch.Generator().manual_seed(1)) * 0.1
    for overlap in (0.25, 0.5):
        ours = separate_tensor(model, x, segment=segment, overlap=overlap, quiet=True)
        theirs = _apply_model(model, x, overlap, segment)
        assert ours.shape == theirs.shape
        assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()


def test_awkward_segment_rounds_like_apply_model():
    # 1.15 s * 8000 Hz is 9199.999... in floating point; Demucs chunks 9200 samples
    torch.manual_seed(0)
    model = models.build(
        "htdemucs", ["a", "b"], SR, 1, segment=1.2, depth=2, t_layers=1, channels=8, nfft=256
    )
    x = torch.randn(1, 3 * SR + 11) * 0.1
    assert inference.segment_samples(SR, 1.15) == 9200
    ours = separate_tensor(model, x, segment=1.15, overlap=0.25, quiet=True)
    assert torch.allclose(ours, _apply_model(model, x, 0.25, 1.15), atol=1e-5)


def test_mixed_bag_runs_each_model_on_its_own_windows():
    from demucs.apply import BagOfModels

    m = _demucs_models()
    bag = BagOfModels([m["hdemucs"], m["htdemucs"]], weights=[[1.0, 0.2], [0.5, 1.0]])
    x = torch.randn(1, 3 * SEG + 77, generator=torch.Generator().manual_seed(3)) * 0.1
    ours = separate_tensor(bag, x, overlap=0.25, quiet=True)
    assert torch.allclose(ours, _apply_model(bag, x, 0.25, 0.5), atol=1e-5)
    sep = inference.StreamSeparator(bag, SR, 1, quiet=True)  # streamed in odd blocks
    step = 1234
    y = [sep.push(x[:, i : i + step]) for i in range(0, x.shape[-1], step)]
    assert torch.allclose(torch.cat([*y, sep.finish()], dim=-1), ours, atol=1e-6)


def test_own_overlap_add_matches_demucs_apply_model_on_full_chunks():
    model = _demucs_models()["hdemucs"]
    x = torch.randn(1, 2 * SEG + 333) * 0.1
    ours = separate_tensor(model, x, overlap=0.25, engine="ola", quiet=True)
    theirs = _apply_model(model, x, 0.25, 0.5)
    # same chunks, padding and weights; they differ only where apply_model runs the short
    # last chunk padded to the model's valid length (ours pads every chunk to a full segment)
    last = 2 * int(0.75 * SEG)
    assert torch.allclose(ours[..., :last], theirs[..., :last], atol=1e-5)
    assert not torch.allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize("engine", ["ola", "demucs"])
def test_streaming_blocks_equal_whole_tensor_with_bounded_buffers(engine):
    model = _demucs_models()["htdemucs"] if engine == "demucs" else GainModel((1.0, -0.5))
    x = torch.randn(1, 12 * SEG + 77, generator=torch.Generator().manual_seed(2)) * 0.1
    whole = separate_tensor(model, x, segment=0.3, engine=engine, quiet=True)
    ola = inference._engine(
        model, 1, 0.3, 0.25, engine == "demucs", "cpu", 1.0, 1, None
    )  # the engine StreamSeparator drives
    rng = np.random.default_rng(0)
    outs, kept, i = [], [], 0
    while i < x.shape[-1]:
        n = int(rng.integers(1, SEG))
        outs.append(ola.push(x[:, i : i + n]))
        kept.append((ola._mix.shape[-1], ola._acc.shape[-1]))
        i += n
    outs.append(ola.finish())
    assert torch.allclose(torch.cat(outs, dim=-1), whole, atol=1e-6)
    # memory: never more than about one window of mixture and one segment of estimates
    assert max(m for m, _ in kept) <= 2 * SEG + SEG and max(a for _, a in kept) <= SEG
    # the whole input in one push: the estimates are still summed one chunk at a time
    sizes = []
    ola = inference._engine(
        model, 1, 0.3, 0.25, engine == "demucs", "cpu", 1.0, 1,
        lambda k: sizes.append(ola._acc.shape[-1]),
    )  # fmt: skip
    assert torch.allclose(torch.cat([ola.push(x), ola.finish()], dim=-1), whole, atol=1e-6)
    assert len(sizes) > 20 and max(sizes) <= SEG


@pytest.mark.parametrize("rate,channels", [(8000, 1), (44100, 2), (22050, 1), (11025, 2)])
def test_stream_separator_keeps_length_rate_and_alignment(rate, channels):
    model = GainModel((1.0, 0.5))
    t = torch.arange(int(2.7 * rate)) / rate
    x = 0.5 * torch.sin(2 * torch.pi * 330.0 * t).repeat(channels, 1)  # below 4 kHz
    sep = inference.StreamSeparator(model, rate, channels, stems=["s1", "s0"], quiet=True)
    step = int(0.37 * rate)
    outs = [sep.push(x[:, i : i + step]) for i in range(0, x.shape[-1], step)]
    outs.append(sep.finish())
    y = torch.cat(outs, dim=-1)
    assert y.shape == (2, channels, x.shape[-1])
    # identity model: the stems are the input (band-limited through 8 kHz), not delayed
    inner = slice(rate // 10, -rate // 10)
    assert (y[1, :, inner] - x[:, inner]).abs().max() < 2e-3
    assert (y[0, :, inner] - 0.5 * x[:, inner]).abs().max() < 1e-3
    with pytest.raises(WbError, match="after finish"):
        sep.push(x[:, :10])


def test_stream_separator_input_shorter_than_resampler_delay():
    sep = inference.StreamSeparator(GainModel(), 44100, 2, quiet=True)
    assert sep.push(torch.full((2, 2), 0.5)).shape[-1] == 0
    assert sep.finish().shape == (2, 2, 2)


def test_stream_separator_rejects_bad_formats():
    with pytest.raises(AudioError, match="only mono or stereo"):
        inference.StreamSeparator(GainModel(), 8000, 3, quiet=True)
    with pytest.raises(WbError, match="unknown stem"):
        inference.StreamSeparator(GainModel(), 8000, 1, stems=["vocals"], quiet=True)
    sep = inference.StreamSeparator(GainModel(), 8000, 1, quiet=True)
    with pytest.raises(WbError, match="empty"):
        sep.finish()


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
    out = separate_audio(model, x, 44100, quiet=True, high_band=False)
    assert out.shape == (2, 2, 44100)
    # identity model: each stem is the band-limited mono downmix, duplicated to both channels
    assert torch.equal(out[0, 0], out[0, 1])
    # with the high band, each channel gets its own input channel's band above 4 kHz
    full = separate_audio(model, x, 44100, quiet=True)
    assert full.shape == (2, 2, 44100) and not torch.equal(full[0, 0], full[0, 1])


def test_demucs_bag_of_models_and_its_segment_limit():
    from demucs.apply import BagOfModels

    kwargs = {"segment": 0.5, "channels": 8, "depth": 2, "nfft": 256, "t_layers": 1}
    bag = BagOfModels([models.build("htdemucs", ["a", "b"], SR, 2, **kwargs) for _ in range(2)])
    x = torch.randn(2, 3 * SEG + 5) * 0.1
    out = separate_tensor(bag, x, overlap=0.25, quiet=True)
    assert out.shape == (2, 2, 3 * SEG + 5) and torch.isfinite(out).all()
    assert torch.allclose(out, _apply_model(bag, x, 0.25, 0.5), atol=1e-5)
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


@pytest.mark.parametrize("name", ["hdemucs", "htdemucs", "bag"])
def test_shifts_equal_apply_model_shifts(name, monkeypatch):
    """Streaming shift trick == demucs.apply.apply_model(shifts=2, split=True) for the same
    offsets (one per shift, per model of a bag, in the same order). The offsets are fixed:
    HTDemucs' forward itself draws from ``random``, so seeding alone would not align them."""
    import random
    from fractions import Fraction

    from demucs.apply import BagOfModels, apply_model

    m = _demucs_models()
    model = BagOfModels([m["hdemucs"], m["htdemucs"]]) if name == "bag" else m[name]
    x = torch.randn(1, 2 * SR + 555, generator=torch.Generator().manual_seed(4)) * 0.1
    offsets = [1234, 17, 4000, 0]  # max_shift = 4000 at 8 kHz

    def fixed():
        draws = iter(offsets)
        monkeypatch.setattr(random, "randint", lambda a, b: next(draws))

    fixed()
    with torch.no_grad():
        theirs = apply_model(model.eval(), x[None], shifts=2, split=True, overlap=0.25,
                             progress=False, segment=Fraction(1, 2))[0]  # fmt: skip
    fixed()
    ours = separate_tensor(model, x, overlap=0.25, shifts=2, quiet=True)
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()
    unshifted = separate_tensor(model, x, overlap=0.25, quiet=True)
    assert (ours - unshifted).abs().max() > 1e-4  # the shifts did change something
    fixed()  # streamed in odd blocks: the same
    sep = inference.StreamSeparator(model, SR, 1, quiet=True, shifts=2)
    step = 2345
    y = [sep.push(x[:, i : i + step]) for i in range(0, x.shape[-1], step)]
    assert torch.allclose(torch.cat([*y, sep.finish()], dim=-1), ours, atol=1e-6)


def test_shifts_of_a_time_invariant_model_change_nothing():
    model = GainModel(gains=(0.25, 0.75))
    x = torch.randn(1, 3 * SR + 17, generator=torch.Generator().manual_seed(5))
    plain = separate_tensor(model, x, quiet=True)
    shifted = separate_tensor(model, x, shifts=3, quiet=True)
    assert shifted.shape == plain.shape and torch.allclose(shifted, plain, atol=1e-6)
    with pytest.raises(WbError, match="shifts"):
        separate_tensor(model, x, shifts=-1, quiet=True)
