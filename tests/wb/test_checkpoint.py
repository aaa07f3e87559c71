"""wb.checkpoint: self-describing files load with weights_only=True and rebuild exactly."""

from __future__ import annotations

import pytest
import torch

from wb import checkpoint
from wb.errors import WbError


def tiny(width: int = 3) -> torch.nn.Module:
    """A registry-style builder used by the round-trip test."""
    return torch.nn.Sequential(
        torch.nn.Linear(4, width), torch.nn.Tanh(), torch.nn.Linear(width, 2)
    )


def test_roundtrip_bit_identical(tmp_path):
    torch.manual_seed(0)
    model = tiny(5)
    path = checkpoint.save_model(
        tmp_path / "m.pt", "wb.test:tiny", {"width": 5}, model.state_dict(),
        meta={"sources": ("s", "a"), "metrics": {"si_sdr": 1.5}},
    )  # fmt: skip
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == checkpoint.FORMAT and raw["meta"]["sources"] == ["s", "a"]
    loaded, info = checkpoint.load_model(path, {"wb.test:tiny": tiny})
    x = torch.randn(7, 4)
    assert torch.equal(loaded(x), model.eval()(x))
    assert info["kwargs"] == {"width": 5} and "torch" in info["versions"]


def test_rejects_non_plain_meta_and_bad_files(tmp_path):
    with pytest.raises(WbError, match="not a plain value"):
        checkpoint.save_model(tmp_path / "m.pt", "a:b", {}, {}, meta={"x": object()})
    assert not (tmp_path / "m.pt").exists()
    (tmp_path / "junk.pt").write_text("junk")
    with pytest.raises(WbError, match="not a loadable model file"):
        checkpoint.read_model(tmp_path / "junk.pt")
    with pytest.raises(WbError, match="not an allowed model"):
        checkpoint.resolve("os:system", {"wb.test:tiny": tiny})
