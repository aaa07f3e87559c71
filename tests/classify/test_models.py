"""Heads: shapes, registry errors, a head overfitting a tiny batch, scans, DropBlock, export."""

from __future__ import annotations

import pytest
import torch

from classify.models import BUILDERS, HEADS, Classifier, build_head
from classify.models.layers import DropBlock2d
from classify.models.mamba import selective_scan
from wb.checkpoint import count_parameters, load_model, save_model
from wb.errors import ConfigError

SMALL = {
    "piczak": {"hidden": 64},
    "cnn": {"widths": [8, 16]},
    "transformer": {"d_model": 32, "n_heads": 2, "n_layers": 1, "stem_channels": [8]},
    "mamba": {"d_model": 16, "n_layers": 1, "d_state": 4, "stem_channels": [8]},
    "shortchunk": {"widths": [8, 16, 16], "hidden": 32},
    "crnn": {"widths": [8, 16], "pools": [[2, 2], [2, 2]], "gru": 16},
}
VARIANTS = [
    ("piczak", {}),
    ("piczak", {"hidden": 32, "deltas": False}),
    ("cnn", {}),
    ("cnn", {"widths": [8, 16], "activation": "swiglu", "dropblock": 0.2, "pooling": "avg*max"}),
    ("cnn", {"widths": [8], "activation": "gelu", "pooling": "max", "stem_stride": 2}),
    ("cnn", {"widths": [8, 8], "activation": "lrelu", "pooling": "avg", "input_bn": False}),
    ("transformer", {"d_model": 32, "n_heads": 2, "n_layers": 1}),
    ("transformer", {"d_model": 32, "n_heads": 2, "n_layers": 1, "embed": "patch",
                     "patch": [8, 8], "patch_stride": [4, 4], "pooling": "mean"}),
    ("mamba", {"d_model": 16, "n_layers": 1}),
    ("mamba", {"d_model": 16, "n_layers": 1, "stem": "linear", "pooling": "attention",
               "bidirectional": False, "scan": "parallel"}),
    ("shortchunk", {}),
    ("shortchunk", {"widths": [8, 16], "hidden": 16}),
    ("crnn", {}),
    ("crnn", {"widths": [8], "pools": [[4, 1]], "gru": 8}),
]  # fmt: skip


@pytest.mark.parametrize("name,kwargs", VARIANTS)
def test_head_shapes(name: str, kwargs: dict) -> None:
    head = build_head(name, n_classes=7, n_bins=32, n_frames=41, **kwargs)
    x = torch.randn(3, 1, 32, 41)
    out = head(x)
    assert out.shape == (3, 7) and torch.isfinite(out).all()
    out.sum().backward()
    assert count_parameters(head) > 0


def test_registry_and_bad_settings() -> None:
    assert set(HEADS) == {"piczak", "cnn", "transformer", "mamba", "shortchunk", "crnn"}
    with pytest.raises(ConfigError, match="unknown model"):
        build_head("resnet", 2, 32, 41)
    with pytest.raises(ConfigError, match="model cnn"):
        build_head("cnn", 2, 32, 41, width=3)
    with pytest.raises(ConfigError):
        build_head("cnn", 2, 32, 41, activation="tanh")
    with pytest.raises(ConfigError):
        build_head("transformer", 2, 32, 41, d_model=30, n_heads=4)
    with pytest.raises(ConfigError):
        Classifier(2, 8000, 8000, {"n_mels": 32}, {"widths": [8]})  # no model name
    with pytest.raises(ConfigError, match="differ in length"):
        build_head("crnn", 2, 32, 41, widths=[8, 8], pools=[[2, 2]])


@pytest.fixture
def one_thread():
    """Tiny tensors: one thread avoids OpenMP spin-waiting on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", ["cnn", "transformer", "shortchunk", "crnn"])
def test_head_overfits_tiny_batch(name: str, one_thread) -> None:
    torch.manual_seed(0)
    x = torch.randn(8, 1, 24, 20)
    y = torch.arange(8) % 4
    head = build_head(name, 4, 24, 20, **{**SMALL[name], "dropout": 0.0})
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(head(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    head.eval()
    with torch.no_grad():
        logits = head(x)
    assert torch.nn.functional.cross_entropy(logits, y) < 0.1
    assert (logits.argmax(-1) == y).all()


def test_parallel_scan_matches_sequential() -> None:
    torch.manual_seed(0)
    b, t, c, n = 2, 40, 6, 4
    x = torch.randn(b, t, c, requires_grad=True)
    dt = torch.rand(b, t, c) * 0.5 + 0.01
    A = -torch.arange(1, n + 1.0).repeat(c, 1)
    B, C, D = torch.randn(b, t, n), torch.randn(b, t, n), torch.ones(c)
    y1 = selective_scan(x, dt, A, B, C, D, "sequential")
    (g1,) = torch.autograd.grad(y1.square().sum(), x)
    y2 = selective_scan(x, dt, A, B, C, D, "parallel")
    (g2,) = torch.autograd.grad(y2.square().sum(), x)
    assert torch.allclose(y1, y2, atol=1e-4) and torch.allclose(g1, g2, atol=1e-3)


def test_dropblock() -> None:
    x = torch.ones(2, 4, 16, 16)
    db = DropBlock2d(p=0.3, block_size=3)
    assert torch.equal(db.eval()(x), x)
    torch.manual_seed(0)
    y = db.train()(x)
    dropped = (y == 0).float().mean().item()
    assert 0.1 < dropped < 0.5 and torch.allclose(y.mean(), torch.tensor(1.0), atol=1e-4)


def test_classifier_roundtrip_through_model_file(tmp_path) -> None:
    fe = {"n_fft": 256, "hop_length": 128, "n_mels": 24, "normalize": True}
    clf = Classifier(3, 8000, 4000, fe, {"name": "cnn", "widths": [8]})
    clf.frontend.fit_norm([torch.randn(4, 4000)])
    clf.eval()
    kwargs = {"n_classes": 3, "sample_rate": 8000, "n_samples": 4000, "frontend": fe,
              "model": {"name": "cnn", "widths": [8]}}  # fmt: skip
    path = save_model(tmp_path / "m.pt", "classify.models:Classifier", kwargs, clf.state_dict())
    loaded, info = load_model(path, BUILDERS)
    x = torch.randn(2, 4000)
    with torch.no_grad():
        assert torch.allclose(clf(x), loaded(x), atol=1e-6)
    assert info["class"] == "classify.models:Classifier"
