"""wb.lightning.precision: the train.precision setting -> Lightning's precision."""

import pytest
import torch

from wb.errors import ConfigError
from wb.lightning import precision


def test_precision_on_cpu() -> None:
    assert precision("auto", "cpu") == "32-true"
    assert precision("32-true", "cpu") == "32-true"
    with pytest.raises(ConfigError, match="needs a GPU"):
        precision("16-mixed", "cpu")
    with pytest.raises(ConfigError, match="choose auto"):
        precision("fp8", "cpu")
    expected = "32-true" if not torch.cuda.is_available() else precision("auto", "gpu")
    assert precision("auto", "auto") == expected
