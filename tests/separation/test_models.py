"""Model registry: uniform shapes, builders, unknown names."""

from __future__ import annotations

import pytest
import torch

from separation import models
from wb.checkpoint import resolve
from wb.errors import ConfigError, WbError

from .conftest import TINY_TASNET

TINY = {
    "convtasnet": {k: v for k, v in TINY_TASNET.items() if k != "name"},
    "hdemucs": {"channels": 8, "depth": 3, "nfft": 256},
    "htdemucs": {"channels": 8, "depth": 2, "nfft": 256, "t_layers": 1},
}


def test_unknown_name_lists_known():
    with pytest.raises(WbError) as err:
        models.get("nope")
    for name in ("convtasnet", "hdemucs", "htdemucs"):
        assert name in str(err.value)
    with pytest.raises(WbError):
        models.build("tasnet", ["a"], 8000, 1)


@pytest.mark.parametrize("name", ["convtasnet", "hdemucs", "htdemucs"])
@pytest.mark.parametrize("channels", [1, 2])
def test_uniform_forward_shape(name, channels):
    model = models.build(name, ["a", "b", "c"], 8000, channels, segment=0.5, **TINY[name]).eval()
    assert model.sources == ["a", "b", "c"] and model.samplerate == 8000
    assert model.audio_channels == channels and float(model.segment) == 0.5
    with torch.no_grad():
        out = model(torch.randn(2, channels, 4000))
    assert out.shape == (2, 3, channels, 4000)
    assert resolve(models.class_ref(name), models.BUILDERS) is models.get(name)


def test_convtasnet_separates_channels_independently():
    torch.manual_seed(0)
    model = models.build("convtasnet", ["a", "b"], 8000, 2, **TINY["convtasnet"]).eval()
    x = torch.randn(1, 2, 2000)
    with torch.no_grad():
        both = model(x)
        left = model.tasnet(x[:, :1])
    assert torch.allclose(both[:, :, 0], left, atol=1e-6)


def test_bad_kwargs_are_config_errors():
    with pytest.raises(ConfigError, match="htdemucs"):
        models.build("htdemucs", ["a"], 8000, 1, no_such_kwarg=3)
    with pytest.raises(ConfigError):
        models.build("hdemucs", [], 8000, 1)
    with pytest.raises(ConfigError):
        models.build("hdemucs", ["a"], 8000, 3)
