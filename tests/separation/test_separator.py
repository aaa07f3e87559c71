"""separation.separator.Separator: validated once, chunking carried with the model."""

from __future__ import annotations

import pytest

from separation import models
from separation.separator import Separator
from wb.errors import WbError

from .conftest import TINY_TASNET, GainModel


def test_from_model_defaults_and_with_chunking():
    sep = Separator.from_model(GainModel((1.0, 0.5), samplerate=8000, segment=0.5))
    assert (sep.sources, sep.sample_rate, sep.audio_channels) == (("s0", "s1"), 8000, 1)
    assert (sep.segment, sep.overlap) == (0.5, 0.25)
    other = sep.with_chunking(overlap=0.5)
    assert (other.segment, other.overlap) == (0.5, 0.5) and sep.overlap == 0.25


def test_invalid_separators_are_refused_once():
    kwargs = {k: v for k, v in TINY_TASNET.items() if k != "name"}
    model = models.build("convtasnet", ["a", "b"], 8000, 1, **kwargs)
    with pytest.raises(WbError, match="overlap must be in \\[0, 1\\)"):
        Separator.from_model(model, overlap=1.0)
    with pytest.raises(WbError, match="positive number of seconds"):
        Separator.from_model(model, segment=-1.0)
    with pytest.raises(WbError, match="distinct source names"):
        Separator(model, ("a", "a"), 8000, 1, 0.5)
    with pytest.raises(WbError, match="outside the supported"):
        Separator(model, ("a", "b"), 500, 1, 0.5)
    with pytest.raises(WbError, match="takes 3 channels"):
        Separator(model, ("a", "b"), 8000, 3, 0.5)
    ht = models.build("htdemucs", ["a", "b"], 8000, 1, segment=1.0, channels=8, depth=2,
                      nfft=256, t_layers=1)  # fmt: skip
    with pytest.raises(WbError, match="longer than this model's training segment 1 s"):
        Separator.from_model(ht).with_chunking(segment=2.0)
    with pytest.raises(WbError, match="not a separation model"):
        Separator.from_model(object())  # type: ignore[arg-type]
