"""wb.lightning.precision: the train.precision setting -> Lightning's precision."""

import pytest
import torch

from wb.errors import ConfigError
from wb.lightning import precision


def test_precision_on_cpu() -> None:
    assert precision("auto", "cpu") == "32-true"
    assert precision("32-true", "cpu") == "32-true"
    assert precision("bf16-mixed", "cpu") == "bf16-mixed"  # Lightning's CPU autocast
    with pytest.raises(ConfigError, match="needs a GPU"):
        precision("16-mixed", "cpu")
    with pytest.raises(ConfigError, match="choose auto"):
        precision("fp8", "cpu")


def test_precision_on_gpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert precision("auto", "auto") == precision("auto", "cuda") == "bf16-mixed"
    assert precision("16-mixed", "gpu") == "16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert precision("auto", "gpu") == "16-mixed"
