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


def test_only_allowed_classes_are_built(tmp_path):
    """A crafted model file naming any other callable (here one that writes files) is refused
    before its kwargs reach code, and nothing is written."""
    victim = tmp_path / "victim.txt"
    path = checkpoint.save_model(
        tmp_path / "evil.pt", "wb.runs:atomic_write_text",
        {"path": str(victim), "text": "pwned"}, {},
    )  # fmt: skip
    with pytest.raises(WbError, match="'wb.runs:atomic_write_text' is not an allowed model"):
        checkpoint.load_model(path, {"wb.test:tiny": tiny})
    assert not victim.exists()
    bad = checkpoint.save_model(tmp_path / "bad.pt", "wb.test:tiny", {"depth": 3}, {})
    with pytest.raises(WbError, match="cannot build wb.test:tiny"):
        checkpoint.load_model(bad, {"wb.test:tiny": tiny})
    raw = torch.load(path, weights_only=True)
    raw.update({"class": "wb.test:tiny", "kwargs": {}, "state_dict": {"w": [1, 2]}})
    torch.save(raw, tmp_path / "nontensor.pt")
    with pytest.raises(WbError, match="not tensors"):
        checkpoint.load_model(tmp_path / "nontensor.pt", {"wb.test:tiny": tiny})


def test_average_state_dicts_known_values_and_refusals():
    a = {"w": torch.tensor([1.0, 2.0, -3.0]), "h": torch.tensor([0.5], dtype=torch.float16),
         "n": torch.tensor(7)}  # fmt: skip
    b = {"w": torch.tensor([3.0, 0.0, 1.0]), "h": torch.tensor([1.5], dtype=torch.float16),
         "n": torch.tensor(7)}  # fmt: skip
    c = {"w": torch.tensor([2.0, 1.0, 5.0]), "h": torch.tensor([1.0], dtype=torch.float16),
         "n": torch.tensor(7)}  # fmt: skip
    avg = checkpoint.average_state_dicts([a, b, c])
    assert list(avg) == ["w", "h", "n"]
    assert torch.equal(avg["w"], torch.tensor([2.0, 1.0, 1.0]))
    assert avg["h"].dtype == torch.float16 and torch.equal(avg["h"], torch.tensor([1.0]).half())
    assert torch.equal(avg["n"], torch.tensor(7))  # integer buffers are kept, not averaged
    assert torch.equal(checkpoint.average_state_dicts([a, a])["w"], a["w"])  # a with itself: a
    assert torch.equal(a["w"], torch.tensor([1.0, 2.0, -3.0]))  # the inputs are left alone
    # float16 is summed wider (60000 + 60000 overflows float16), float64 stays float64
    big = [{"h": torch.tensor([60000.0], dtype=torch.float16)}] * 2
    assert checkpoint.average_state_dicts(big)["h"].item() == 60000.0
    fine = [{"d": torch.tensor([1.0 + 2.0**-40], dtype=torch.float64)},
            {"d": torch.tensor([1.0], dtype=torch.float64)}]  # fmt: skip
    assert checkpoint.average_state_dicts(fine)["d"].item() == 1.0 + 2.0**-41
    # BatchNorm step counters of runs of other lengths: the largest, not a refusal
    bn = [{"bn.num_batches_tracked": torch.tensor(n)} for n in (5, 9, 7)]
    assert checkpoint.average_state_dicts(bn)["bn.num_batches_tracked"].item() == 9
    with pytest.raises(WbError, match="at least two"):
        checkpoint.average_state_dicts([a])
    with pytest.raises(WbError, match="other weights"):
        checkpoint.average_state_dicts([a, {"w": b["w"], "h": b["h"]}])
    with pytest.raises(WbError, match=r"w: model 2 has \(2,\)"):
        checkpoint.average_state_dicts([a, {**b, "w": torch.zeros(2)}])
    with pytest.raises(WbError, match="n: model 2 differs"):
        checkpoint.average_state_dicts([a, {**b, "n": torch.tensor(8)}])
